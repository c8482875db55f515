"""The pinned manifest of ``data/raw``: every file, its md5/size and its public URL.

:data:`SOURCES` lists every file under ``data/raw/`` with the md5 and size that
``dvc add data/raw`` recorded (``data/raw.dvc``), and, where one exists, the public
repository, commit and path it was published at. Two files are printed notebook outputs
with no raw file of their own: one is rebuilt from its notebook
(:mod:`~ephys2expr.download.palette_notebook`), the other comes only from the DVC remote.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ephys2expr.errors import InputError

GITHUB_RAW = "https://raw.githubusercontent.com"
"""Default base URL; a file's URL is ``<base>/<owner>/<repo>/<commit>/<path>``."""

# Commits exactly as data/PROVENANCE.md pins them (abbreviated SHAs, which GitHub resolves).
_GENEEXPR = ("youngseok-seo/GeneExpression", "628efe8e")
_QC_MANUSCRIPT = ("PavlidisLab/patchSeqQCManuscript", "3e2cf955")
_QC = ("PavlidisLab/patchSeqQC", "8b8b4022")
_TASIC = ("AllenInstitute/tasic2016data", "8024b0f9")
_MINI_ATLAS = ("berenslab/mini-atlas", "3bf98a52")
_SCMNC = ("daifengwanglab/scMNC", "ae9e39b5")
_SBNN = ("berenslab/sBNN", "4ff8ba81")
_HUMAN_L1 = ("AllenInstitute/patchseq_human_L1", "7777857c")
_HUMAN_L23 = ("AllenInstitute/patchseq_human_L23", "3daf9f08")
_PYABF = ("swharden/pyABF", "3ad9cd6f")
_BLUEPYEFE = ("BlueBrain/BluePyEfe", "11a1e0c5")


class DownloadError(InputError):
    """A file could not be fetched or did not match its checksum (one line, names the file)."""


@dataclass(frozen=True)
class Source:
    """One raw file: where it goes, what it must hash to, and where it is published.

    Parameters
    ----------
    relpath : str
        Path under ``data/raw/`` (POSIX separators), as in DVC's directory manifest.
    md5 : str
        MD5 of the file's bytes, as recorded by ``dvc add``.
    size : int
        Size in bytes.
    repo : str or None
        ``owner/name`` of the public GitHub repository; ``None`` if there is no raw URL.
    commit : str or None
        The pinned commit (as given in PROVENANCE.md).
    path : str or None
        Path of the file inside ``repo`` at ``commit``.
    origin : str
        Where a file without a raw file of its own comes from (shown to the user).
    extract : str or None
        Name of an extractor in :data:`EXTRACTORS` when the URL is not the file itself
        but a notebook whose printed output holds it; ``None`` for a plain download.
    """

    relpath: str
    md5: str
    size: int
    repo: str | None = None
    commit: str | None = None
    path: str | None = None
    origin: str = field(default="", compare=False)
    extract: str | None = None

    @property
    def name(self) -> str:
        """The file name (last component of :attr:`relpath`)."""
        return self.relpath.rsplit("/", 1)[-1]

    @property
    def downloadable(self) -> bool:
        """True when the file can be fetched (directly or extracted) from a pinned public URL."""
        return self.repo is not None

    def url(self, base_url: str = GITHUB_RAW) -> str:
        """The file's URL under ``base_url`` (``<base>/<owner>/<repo>/<commit>/<path>``)."""
        if not self.downloadable:
            raise ValueError(f"{self.relpath} has no public URL")
        tail = urllib.parse.quote(f"{self.repo}/{self.commit}/{self.path}")
        return f"{base_url.rstrip('/')}/{tail}"


def _gh(repo_commit: tuple[str, str], path: str) -> dict:
    return {"repo": repo_commit[0], "commit": repo_commit[1], "path": path}


SOURCES: tuple[Source, ...] = (
    Source(
        "aibs/aibs_aggregated_ephys_plus_morpho_v10.csv",
        "3af8d113dd8fe025fbfbb472fad79454",
        2664770,
        **_gh(_GENEEXPR, "data/aibs_aggregated_ephys_plus_morpho_v10.csv"),
    ),
    Source(
        "aibs/aibs_aggregated_ephys_v6.csv",
        "f72034b08f66e8c84d924599de135658",
        804997,
        **_gh(_GENEEXPR, "data/aibs_aggregated_ephys_v6.csv"),
    ),
    Source(
        "aibs/aibs_ephys.rda",
        "60f4c8f44b99ec621cb9bab39e7c5ec9",
        373129,
        **_gh(_QC_MANUSCRIPT, "data/aibs_ephys.rda"),
    ),
    Source(
        "aibs/driver_lines_palette.csv",
        "e3defc1cfd8c062767b74f2ac5295812",
        1821,
        **_gh(_GENEEXPR, "Validating Predictions.ipynb"),
        origin="printed output of 'Validating Predictions.ipynb' in youngseok-seo/GeneExpression",
        extract="palette_from_notebook",
    ),
    Source(
        "cadwell2016/E-MTAB-4092.sdrf.txt",
        "be6a7e53bf99f41c059118ed986b3890",
        22064,
        **_gh(_QC_MANUSCRIPT, "data-raw/cadwell/E-MTAB-4092.sdrf.txt"),
    ),
    Source(
        "cadwell2016/IntPhysiologyFinal.mat",
        "c420677a360c89d4790093d722b725e8",
        3518,
        **_gh(_QC_MANUSCRIPT, "data-raw/cadwell/IntPhysiologyFinal.mat"),
    ),
    Source(
        "cadwell2016/cadwell_expr.rda",
        "cb30def6eab0f170c378a18e8d1a04e0",
        1813727,
        **_gh(_QC, "data/cadwell_expr.rda"),
    ),
    Source(
        "cadwell2016/cadwell_meta.rda",
        "d0022821c8eba09defaa861fe5f92327",
        1655,
        **_gh(_QC, "data/cadwell_meta.rda"),
    ),
    Source(
        "crosslab/berg2021/human_IVSCC_excitatory_L23_consolidated_0131.csv",
        "42ccb60ebc30466b078984ab0d3550ef",
        91644,
        **_gh(_HUMAN_L23, "data/human_IVSCC_excitatory_L23_consolidated_0131.csv"),
    ),
    Source(
        "crosslab/berg2021/human_mouse_ephys_all_0127.csv",
        "178e22a9e70273c739c1325ae3015903",
        130028,
        **_gh(_HUMAN_L23, "data/human_mouse_ephys_all_0127.csv"),
    ),
    Source(
        "crosslab/berg2021/mouse_IVSCC_excitatory_L23_consolidated_0129.csv",
        "72cfbc8f24e43b7683aa239c00c601a0",
        27884,
        **_gh(_HUMAN_L23, "data/mouse_IVSCC_excitatory_L23_consolidated_0129.csv"),
    ),
    Source(
        "crosslab/human_l1/aibs_features_E.csv",
        "3b4885d4b542a26b285618b029048113",
        444484,
        **_gh(_HUMAN_L1, "data/aibs_features_E.csv"),
    ),
    Source(
        "crosslab/human_l1/human_l1_dataset_2023_02_06.csv",
        "84896d128fd03ec6e096324be2e88042",
        950956,
        **_gh(_HUMAN_L1, "data/human_l1_dataset_2023_02_06.csv"),
    ),
    Source(
        "crosslab/human_l1/mansvelder_features_E.csv",
        "8c53d4df3b02daa66d675dc403c5b416",
        225040,
        **_gh(_HUMAN_L1, "data/mansvelder_features_E.csv"),
    ),
    Source(
        "crosslab/human_l1/tamas_features_E.csv",
        "98f0482177c8d65dd9b916af34ae3ccd",
        99309,
        **_gh(_HUMAN_L1, "data/tamas_features_E.csv"),
    ),
    Source(
        "genes/entrenz_symbol_s.csv",
        "042c1534763c35e7591da45dbb6c3f97",
        176371,
        **_gh(_GENEEXPR, "data/entrenz_symbol_s.csv"),
    ),
    Source(
        "genes/tasic_gene_names.rda",
        "6054cafb4252f5b26fea8be2d51f8070",
        184566,
        **_gh(_QC_MANUSCRIPT, "data/tasic_gene_names.rda"),
    ),
    Source(
        "recordings/bluepyefe/99111002.nwb",
        "f52423dab8041c9de2aeefba97c2253a",
        530771,
        **_gh(_BLUEPYEFE, "tests/exp_data/hippocampus-portal/99111002.nwb"),
    ),
    Source(
        "recordings/pyabf/171116sh_0018.abf",
        "2704765004d7432d4847b144e8e3d9fe",
        2047488,
        **_gh(_PYABF, "data/abfs/171116sh_0018.abf"),
    ),
    Source(
        "recordings/pyabf/190619B_0003.abf",
        "2a5d85f2a35a2976b549bc6a66486506",
        1234432,
        **_gh(_PYABF, "data/abfs/190619B_0003.abf"),
    ),
    Source(
        "recordings/pyabf/2019_07_24_0055_fsi.abf",
        "834cbf1d372e3d19225e31e718bcd04d",
        2047488,
        **_gh(_PYABF, "data/abfs/2019_07_24_0055_fsi.abf"),
    ),
    Source(
        "recordings/pyabf/File_axon_5.abf",
        "6872d840fc4b3eca0ce23678c0bc806b",
        366592,
        **_gh(_PYABF, "data/abfs/File_axon_5.abf"),
    ),
    Source(
        "scala2021/gene_counts_hvg1000.csv",
        "d70b2bf6eae2672e64e28501145d0255",
        3669834,
        **_gh(_SBNN, "data/scala_2020/gene_counts_hvg1000.csv"),
    ),
    Source(
        "scala2021/m1_patchseq_ephys_features.csv",
        "279cce1cf71d156bfcfbce9ffca29ccd",
        604152,
        **_gh(_MINI_ATLAS, "data/m1_patchseq_ephys_features.csv"),
    ),
    Source(
        "scala2021/m1_patchseq_meta_data.csv",
        "2e69a8e114699b7c17fe3a6295e523c1",
        400798,
        **_gh(_MINI_ATLAS, "data/m1_patchseq_meta_data.csv"),
    ),
    Source(
        "scala2021/motor_data_filtered.rda",
        "f7ff56529d85e5ce8ac7b72d3ec509e7",
        2448640,
        **_gh(_SCMNC, "mouse_motor_cortex/data/motor_data_filtered.rda"),
    ),
    Source(
        "tasic2016/aibsExprData.rda",
        "dad2b321e88b6ec9c3f744cd00c72d81",
        186142,
        **_gh(_QC, "data/aibsExprData.rda"),
    ),
    Source(
        "tasic2016/aibsExprMeta.rda",
        "2bc6a5bd16157129f153e8ad72904788",
        32054,
        **_gh(_QC, "data/aibsExprMeta.rda"),
    ),
    Source(
        "tasic2016/tasic_2016_anno.RData",
        "6070adb254da86ee66b15d9460da7e7a",
        22708,
        **_gh(_TASIC, "data/tasic_2016_anno.RData"),
    ),
    Source(
        "training/aibs_cre_expr_ephys.rda",
        "13e15ed06ec3fecb98b4b77afa2e0c84",
        3358993,
        **_gh(_QC_MANUSCRIPT, "data/aibs_cre_expr_ephys.rda"),
    ),
    Source(
        "training/online_table3_excerpt.csv",
        "15deb442798f9073c025604430129aa7",
        13031,
        origin=(
            "printed outputs (cells 1-2) of 'Relating Ephys Features to Gene Expression.ipynb'"
            " in youngseok-seo/GeneExpression"
        ),
    ),
)
"""Every file of ``data/raw/``; md5/size equal DVC's manifest for ``data/raw.dvc``."""


def dvc_dir_md5(sources: Iterable[Source] = SOURCES) -> str:
    """The md5 DVC records for a directory holding exactly ``sources``.

    DVC hashes the JSON of its ``.dir`` manifest (entries sorted by relpath, keys
    sorted) and appends ``.dir``; equal values mean the manifest describes the same
    tree as ``data/raw.dvc``.
    """
    entries = sorted(
        ({"md5": s.md5, "relpath": s.relpath} for s in sources), key=lambda e: e["relpath"]
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def select(only: Sequence[str] | None) -> list[Source]:
    """The sources named in ``only`` (relpath or bare file name); all when empty.

    Raises
    ------
    InputError
        If a name matches no file of the manifest.
    """
    if not only:
        return list(SOURCES)
    chosen: list[Source] = []
    for name in only:
        key = name.strip().strip("/")
        hits = [s for s in SOURCES if key in (s.relpath, s.name)]
        if not hits:
            valid = ", ".join(s.relpath for s in SOURCES)
            raise InputError(f"--only {name!r}: no such raw file; known files: {valid}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen
