"""Where the MNIST-family files live, their MD5 checksums, and downloading them safely.

Files are read from ``<root>/<name>/`` where root is the ``root`` argument, else
``$MINIGEN_DATA``, else ``~/.cache/minigen``. A missing file is downloaded from the first
mirror that serves it intact: the bytes go to a temporary file in the same folder, which is
renamed into place only once its MD5 matches, so an interrupted or garbled transfer never
leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from http.client import HTTPException
from pathlib import Path
from urllib.request import urlopen

from tqdm import tqdm

from minigen.data.errors import DataError

ENV_VAR = "MINIGEN_DATA"
DEFAULT_ROOT = "~/.cache/minigen"
TIMEOUT_S = 60
_CHUNK = 1 << 16

# The four original files of each split: images, then labels.
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# Mirrors are tried in order; the MD5s are those of the original distribution files.
MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# What a failed transfer raises: network and HTTP errors, and our own checksum mismatch.
_TRANSFER_ERRORS = (OSError, HTTPException, DataError)


def data_root(root=None) -> Path:
    """The folder that holds one subfolder per data set: ``root``, else $MINIGEN_DATA, else the cache."""
    if root is None:
        root = os.environ.get(ENV_VAR) or DEFAULT_ROOT
    return Path(root).expanduser()


def file_md5(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(name: str, filename: str, root=None, opener=None) -> Path:
    """The path of data set ``name``'s file ``filename``, checked against its MD5.

    A missing file is downloaded (see ``download``); a file already there with the wrong
    MD5 is an error that says to delete it.
    """
    path = data_root(root) / name / filename
    md5 = MD5[name][filename]
    if not path.exists():
        return download([mirror + filename for mirror in MIRRORS[name]], path, md5, opener)
    found = file_md5(path)
    if found != md5:
        raise DataError(
            f"{path} is corrupt or not the original file (md5 {found}, expected {md5}); "
            "delete it and load again to download a fresh copy"
        )
    return path


def download(urls, path, md5: str, opener=None) -> Path:
    """Download ``path`` from the first of ``urls`` that serves bytes with MD5 ``md5``.

    ``opener(url, timeout=...)`` returns a response (a context manager with ``read(n)`` and
    ``headers``); it defaults to ``urllib.request.urlopen``. Each attempt writes a temporary
    file beside ``path`` and removes it unless the checksum matched. When every mirror fails,
    the error lists each URL with its failure and says how to supply the file by hand.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = urlopen if opener is None else opener
    failures = []
    for url in urls:
        try:
            _download_one(url, path, md5, opener)
            return path
        except _TRANSFER_ERRORS as error:
            failures.append(f"  {url}: {error}")
    raise DataError(
        f"could not download {path.name} from any mirror:\n" + "\n".join(failures) + "\n"
        f"fetch it yourself (md5 {md5}) and put it at {path}, "
        f"or set {ENV_VAR} to a folder that holds {path.parent.name}/{path.name}"
    )


def _download_one(url: str, path: Path, md5: str, opener) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        digest = hashlib.md5()
        with os.fdopen(descriptor, "wb") as out, opener(url, timeout=TIMEOUT_S) as response:
            size = response.headers.get("Content-Length")
            with tqdm(total=int(size) if size else None, unit="B", unit_scale=True, desc=path.name) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DataError(f"md5 {digest.hexdigest()}, expected {md5}: corrupt or wrong file")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
