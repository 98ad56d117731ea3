"""What each real benchmark looks like on disk, how to get it, and how many images it must hold.

One :class:`DatasetInfo` per registered benchmark feeds three consumers: the loaders (their "not found" errors
print the expected layout and the way to get the data), ``dml data download`` (the URL and checksum, or the manual
steps) and ``dml data check`` (the expected image counts).

Expected counts (zero-shot splits by class id), and where they are confirmed:

* CUB-200-2011: 11,788 images, classes 1-100 → 5,864 train, 101-200 → 5,924 test; Cars196: 16,185 images, classes
  1-98 → 8,054, 99-196 → 8,131; Stanford Online Products: 120,053 images, 59,551 train (11,318 classes), 60,502 test
  (11,316 classes). These are the lengths asserted by pytorch-metric-learning's dataset tests
  (KevinMusgrave/pytorch-metric-learning ``tests/datasets/test_{cub,cars196,sop}.py``).
* In-Shop: 25,882 train images (3,997 items), 14,218 query and 12,612 gallery images (3,985 items), 52,712 in all:
  the sample numbers printed in the docstring of mmpretrain's ``InShop`` dataset (open-mmlab/mmpretrain
  ``mmpretrain/datasets/inshop.py``); the item counts are those quoted in DML loaders' In-Shop docstrings.
* Hotels-50K: 1,027,871 train images (50,000 hotels, 92 chains), 17,954 test images (5,000 hotels), from the README
  of GWUvision/Hotels-50K, which also warns that after the 2020-04-27 refresh the counts are only "roughly
  correct" because image URLs rot. They are reported, never enforced.

Download: only CUB-200-2011 has a stable public archive (CaltechDATA record 65de6-vp158). Its MD5
``97eceeb196236b17998738112f37df78`` is the value used by many independent loaders (e.g. ContinualAI/avalanche
``CUB200.tgz_md5``, TDeVries/cub2011_dataset); the CaltechDATA page itself was not available to confirm it, so the
provenance is third-party code. The other benchmarks have no stable URL (dead FTP and ``ai.stanford.edu`` links,
Google Drive folders, or per-image URLs for Hotels-50K) and get manual instructions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dml.data.registry import UnknownDatasetError
from dml.utils.registry import did_you_mean


@dataclass(frozen=True)
class Download:
    """A single archive that unpacks into a dataset folder.

    Attributes:
        url: Where to fetch it (HTTP or HTTPS; resumed with ``Range`` requests).
        filename: Name of the archive file (``.tgz``, ``.tar.gz``, ``.tar`` or ``.zip``).
        md5: Expected MD5 hex digest, or ``None``.
        sha256: Expected SHA-256 hex digest, or ``None``. At least one of the two must be set.
        marker: A path, relative to the dataset folder, that exists after a correct extraction.
        checksum_source: Where the checksum comes from (printed by ``dml data download``).
        size: Expected size in bytes when known (only used in messages).
    """

    url: str
    filename: str
    marker: str
    checksum_source: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.md5 is None and self.sha256 is None:
            raise ValueError(f"Download of {self.filename} needs an md5 or a sha256: an unverified archive could "
                             "be a truncated or tampered file.")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one benchmark.

    Attributes:
        name: Registered name (``dml.data.build(name)``).
        title: Human-readable name.
        citation: Paper to cite.
        homepage: Official page.
        layout: The folder tree the loader reads, relative to the dataset folder.
        instructions: How to obtain the data by hand (used when ``download`` is ``None``, and in errors).
        expected: Expected image count per split (``"train"``, ``"test"``, ``"all"``, and ``"query"`` /
            ``"gallery"`` for In-Shop).
        exact_counts: Whether ``dml data check`` fails on a count mismatch (``False`` for Hotels-50K).
        download: The archive for ``dml data download``, or ``None`` when only manual instructions exist.
    """

    name: str
    title: str
    citation: str
    homepage: str
    layout: str
    instructions: str
    expected: dict[str, int] = field(default_factory=dict)
    exact_counts: bool = True
    download: Download | None = None

    def how_to_get(self, directory: str | None = None) -> str:
        """The download command or the manual steps, for the dataset folder ``directory`` (``<root>`` if None)."""
        where = "<root>" if directory is None else str(directory)
        if self.download is not None:
            return f"run `dml data download {self.name} --root {where}`."
        return (f"there is no stable public URL to fetch automatically (`dml data download {self.name}` prints "
                f"these steps):\n{self.instructions.replace('<root>', where)}")


CUB = DatasetInfo(
    name="cub200",
    title="Caltech-UCSD Birds-200-2011 (CUB-200-2011)",
    citation="Wah, Branson, Welinder, Perona, Belongie. The Caltech-UCSD Birds-200-2011 Dataset. "
             "Caltech technical report CNS-TR-2011-001, 2011.",
    homepage="https://www.vision.caltech.edu/datasets/cub_200_2011/",
    layout="""\
<root>/CUB_200_2011/            (or these files directly in <root>)
    images.txt                  <image_id> <relative path under images/>
    image_class_labels.txt      <image_id> <class_id 1..200>
    bounding_boxes.txt          <image_id> <x> <y> <width> <height>   (only for bbox_crop=True)
    images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg ...""",
    instructions="""\
1. Download CUB_200_2011.tgz (1.1 GB) from https://data.caltech.edu/records/65de6-vp158
2. mkdir -p <root> && tar -xzf CUB_200_2011.tgz -C <root>""",
    expected={"train": 5864, "test": 5924, "all": 11788},
    download=Download(
        url="https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
        filename="CUB_200_2011.tgz",
        md5="97eceeb196236b17998738112f37df78",
        marker="CUB_200_2011/images.txt",
        checksum_source="MD5 used by independent CUB loaders (ContinualAI/avalanche CUB200.tgz_md5, "
                        "TDeVries/cub2011_dataset); not confirmed against the CaltechDATA page itself",
    ),
)

CARS = DatasetInfo(
    name="cars196",
    title="Stanford Cars (Cars196)",
    citation="Krause, Stark, Deng, Fei-Fei. 3D Object Representations for Fine-Grained Categorization. "
             "ICCV Workshops (3dRR), 2013.",
    homepage="https://ai.stanford.edu/~jkrause/cars/car_dataset.html",
    layout="""\
One of three layouts (checked in this order):
 (a) original release:       <root>/cars_annos.mat  + <root>/car_ims/000001.jpg ...
     (cars_annos.mat: struct array `annotations` with relative_im_path, bbox_x1, bbox_y1, bbox_x2, bbox_y2,
      class, test)
 (b) devkit release:         <root>/devkit/cars_train_annos.mat
                             <root>/cars_test_annos_withlabels.mat   (or in <root>/devkit/)
                             <root>/cars_train/00001.jpg ...  and  <root>/cars_test/00001.jpg ...
                             (cars_train/cars_train/ and cars_test/cars_test/, as some mirrors nest them, also work)
 (c) class-folder repackage: <root>/names.csv, <root>/anno_train.csv, <root>/anno_test.csv,
                             <root>/car_data/car_data/{train,test}/<class name>/<file>.jpg
     (the Kaggle "jutrera/stanford-car-dataset-by-classes-folder" archive used by pytorch-metric-learning)""",
    instructions="""\
The original Stanford URLs (ai.stanford.edu/~jkrause/car196/..., imagenet.stanford.edu/internal/car196/...) no
longer serve the files. Obtain a copy of either
  - the original release: car_ims.tgz + cars_annos.mat, then: mkdir -p <root> && tar -xzf car_ims.tgz -C <root>
    && cp cars_annos.mat <root>/   (layout a), or
  - the devkit release: car_devkit.tgz, cars_train.tgz, cars_test.tgz, cars_test_annos_withlabels.mat (mirrored
    on Kaggle and elsewhere), extracted into <root> (layout b), or
  - the Kaggle archive jutrera/stanford-car-dataset-by-classes-folder unzipped into <root> (layout c).""",
    expected={"train": 8054, "test": 8131, "all": 16185},
)

SOP = DatasetInfo(
    name="sop",
    title="Stanford Online Products (SOP)",
    citation="Oh Song, Xiang, Jegelka, Savarese. Deep Metric Learning via Lifted Structured Feature Embedding. "
             "CVPR 2016, arXiv:1511.06452.",
    homepage="https://cvgl.stanford.edu/projects/lifted_struct/",
    layout="""\
<root>/Stanford_Online_Products/    (or these files directly in <root>)
    Ebay_train.txt     header `image_id class_id super_class_id path`, then one line per image
    Ebay_test.txt      same columns; test classes 11319..22634
    bicycle_final/111085122871_0.JPG ...""",
    instructions="""\
1. Download Stanford_Online_Products.zip from the link in the README of
   https://github.com/rksltnl/Deep-Metric-Learning-CVPR16 (the project page's FTP link is gone).
2. mkdir -p <root> && unzip Stanford_Online_Products.zip -d <root>""",
    expected={"train": 59551, "test": 60502, "all": 120053},
)

INSHOP = DatasetInfo(
    name="inshop",
    title="DeepFashion In-Shop Clothes Retrieval",
    citation="Liu, Luo, Qiu, Wang, Tang. DeepFashion: Powering Robust Clothes Recognition and Retrieval with Rich "
             "Annotations. CVPR 2016.",
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html",
    layout="""\
<root>/Eval/list_eval_partition.txt   line 1: image count; line 2: header
                                      `image_name item_id evaluation_status`; then one line per image
<root>/Img/img/WOMEN/Dresses/id_00000002/02_1_front.jpg ...   (or <root>/img/...)""",
    instructions="""\
1. From the In-Shop Clothes Retrieval Benchmark folder linked on
   https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html (Google Drive), download
   Img/img.zip and Eval/list_eval_partition.txt.
2. mkdir -p <root>/Img <root>/Eval && unzip img.zip -d <root>/Img && cp list_eval_partition.txt <root>/Eval/""",
    expected={"train": 25882, "query": 14218, "gallery": 12612, "test": 26830, "all": 52712},
)

HOTELS = DatasetInfo(
    name="hotels50k",
    title="Hotels-50K",
    citation="Stylianou, Xuan, Shende, Brandt, Souvenir, Pless. Hotels-50K: A Global Hotel Recognition Dataset. "
             "AAAI 2019, arXiv:1901.11397.",
    homepage="https://github.com/GWUvision/Hotels-50K",
    layout="""\
<root>/input/dataset/     (or <root>/input/, or <root>/dataset/)
    chain_info.csv   chain_id,chain_name
    hotel_info.csv   hotel_id,hotel_name,chain_id,latitude,longitude
    train_set.csv    image_id,hotel_id,image_url,image_source,upload_timestamp
    test_set.csv     same columns
<root>/images/train/<chain_id>/<hotel_id>/<image_source>/<image_id>.jpg
<root>/images/test/{unoccluded,low_occlusions,medium_occlusions,high_occlusions}/<chain_id>/<hotel_id>/
    <image_source>/<image_id>.jpg   (occluded folders also hold masks/<image_id>.png, which are skipped)""",
    instructions="""\
1. git clone https://github.com/GWUvision/Hotels-50K <root> && cd <root> && tar -xzf input/dataset.tar.gz -C input
   (the four CSVs must end up in <root>/input/dataset/; <root>/input/ and <root>/dataset/ are accepted too)
2. Test images (3.14 GB): download https://www2.seas.gwu.edu/~astylianou/hotels50k/test.tar.gz into <root>/images
   and extract it there (tar -xzf test.tar.gz -C <root>/images).
3. Train images exist only as URLs: run `python download_train.py` in <root> (needs opencv-python); it writes
   images/train/<chain_id>/<hotel_id>/<image_source>/<image_id>.<ext>. Many URLs have rotted, so expect fewer
   than 1,027,871 images; the loader uses the ones present.""",
    expected={"train": 1027871, "test": 17954},
    exact_counts=False,
)

CATALOG: dict[str, DatasetInfo] = {info.name: info for info in (CUB, CARS, SOP, INSHOP, HOTELS)}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of benchmark ``name``; an unknown name raises ``UnknownDatasetError``."""
    if name not in CATALOG:
        raise UnknownDatasetError(f"No benchmark named {name!r}.{did_you_mean(name, CATALOG)} Benchmarks with "
                                  f"files on disk: {sorted(CATALOG)}. (The built-in 'synthetic' and 'digits' sets "
                                  "need no download.)")
    return CATALOG[name]
