"""The downloader and the download steps of the source order, against a local HTTP server
on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import h5py
import numpy as np
import pytest

# filtered_sets first: it derives specs from upstream.UPSTREAM_SPECS when imported, which the registry does
# lazily, possibly inside a test below that replaced them (the module then failed when run on its own)
from annbench.datasets import filtered_sets, upstream  # noqa: F401
from annbench.datasets.download import DownloadError, download
from annbench.datasets.format import load_dataset, write_dataset
from annbench.datasets.registry import prepare
from annbench.datasets.spec import DatasetSpec, Upstream
from annbench.quality.groundtruth import exact_knn

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


class Server:
    """Serves ``files`` (path → bytes) with Range support; ``truncate`` paths send half the body
    on their first plain (non-Range) request, then drop the connection."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if not rng and self.path in server.truncate:
                    server.truncate.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # polls for shutdown every 10 ms (the default, 0.5 s, is what close() would wait in every test)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def closed_port_url(path: str = "/f.bin") -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"  # nothing listens there any more


def test_good_file_is_verified_and_renamed(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    dest = download(server.url("/f.bin"), tmp_path / "f.bin", {"md5": hashlib.md5(PAYLOAD).hexdigest(),
                                                               "sha256": hashlib.sha256(PAYLOAD).hexdigest()})
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_checksum_mismatch_leaves_no_file(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match=r"checksum mismatch \(sha256 .*expected 0+\)") as e:
        download(server.url("/f.bin"), tmp_path / "f.bin", {"sha256": "0" * 64})
    assert server.url("/f.bin") in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.truncate.add("/f.bin")
    dest = download(server.url("/f.bin"), tmp_path / "f.bin", {"sha256": hashlib.sha256(PAYLOAD).hexdigest()})
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", None), ("/f.bin", f"bytes={len(PAYLOAD) // 2}-")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:1000])
    download(server.url("/f.bin"), tmp_path / "f.bin", {"sha256": hashlib.sha256(PAYLOAD).hexdigest()})
    assert server.requests == [("/f.bin", "bytes=1000-")]
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_server_down_is_a_clear_error(tmp_path):
    url = closed_port_url()
    with pytest.raises(DownloadError) as e:
        download(url, tmp_path / "f.bin")
    assert str(e.value).startswith(f"cannot download {url}: ")
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_on_server(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("/nope.bin"), tmp_path / "f.bin")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the source order, with fake specs

def _vecs(a: np.ndarray) -> bytes:
    a = np.asarray(a, dtype=np.float32)
    return np.hstack([np.full((len(a), 1), a.shape[1], dtype=np.int32).view(np.float32), a]).tobytes()


def _toy_spec(prebuilt: str | None, urls: tuple[str, ...], checksum: dict[str, str] | None = None) -> DatasetSpec:
    from annbench.datasets.upstream import build_texmex

    return DatasetSpec(
        name="toy-8-euclidean", distance="euclidean", dimension=8, n_train=300, n_test=20, origin="test",
        prebuilt_url=prebuilt,
        upstream=(Upstream("toy", "toy_base.fvecs", urls=tuple(u + "toy_base.fvecs" for u in urls)),
                  Upstream("toy", "toy_query.fvecs", urls=tuple(u + "toy_query.fvecs" for u in urls))),
        build=lambda inputs: build_texmex(inputs, "toy_base.fvecs", "toy_query.fvecs", "toy"))


@pytest.fixture
def toy():
    rng = np.random.default_rng(1)
    return rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(20, 8)).astype(np.float32)


def test_upstream_download_then_build(server, tmp_path, monkeypatch, toy):
    train, test = toy
    server.files["/up/toy_base.fvecs"] = _vecs(train)
    server.files["/up/toy_query.fvecs"] = _vecs(test)
    spec = _toy_spec(prebuilt=server.url("/missing.hdf5"), urls=(server.url("/up/"),))
    monkeypatch.setattr(upstream, "UPSTREAM_SPECS", (spec,))
    p = prepare("toy-8-euclidean", tmp_path / "data", None)
    ds = load_dataset(p.path)
    np.testing.assert_array_equal(ds.train, train)
    ids, _ = exact_knn(train, test, "euclidean", 100)
    np.testing.assert_array_equal(ds.neighbors, ids)
    assert p.how.startswith("built from downloaded upstream files")
    assert [r[0] for r in server.requests] == ["/missing.hdf5", "/up/toy_base.fvecs", "/up/toy_query.fvecs"]
    # a second prepare finds it in the data folder: no request
    assert prepare("toy-8-euclidean", tmp_path / "data", None).how.startswith("already in")
    assert len(server.requests) == 3


def test_prebuilt_hdf5_comes_before_upstream(server, tmp_path, monkeypatch, toy):
    train, test = toy
    ids, dists = exact_knn(train, test, "euclidean", 100)
    made = write_dataset(tmp_path / "pre.hdf5", train=train, test=test, distance="euclidean", neighbors=ids,
                         distances=dists)
    server.files["/toy-8-euclidean.hdf5"] = made.read_bytes()
    spec = _toy_spec(prebuilt=server.url("/toy-8-euclidean.hdf5"), urls=(server.url("/up/"),))
    monkeypatch.setattr(upstream, "UPSTREAM_SPECS", (spec,))
    p = prepare("toy-8-euclidean", tmp_path / "data", None)
    assert [r[0] for r in server.requests] == ["/toy-8-euclidean.hdf5"]
    assert "prebuilt" in p.how
    with h5py.File(p.path) as f:
        assert "prebuilt" in f.attrs["obtained"]
    assert sorted(x.name for x in (tmp_path / "data").iterdir()) == ["toy-8-euclidean.hdf5"]


def test_source_dir_comes_before_any_download(server, tmp_path, monkeypatch, toy):
    train, test = toy
    src = tmp_path / "mirror" / "toy"
    src.mkdir(parents=True)
    (src / "toy_base.fvecs").write_bytes(_vecs(train))
    (src / "toy_query.fvecs").write_bytes(_vecs(test))
    spec = _toy_spec(prebuilt=server.url("/toy.hdf5"), urls=(server.url("/up/"),))
    monkeypatch.setattr(upstream, "UPSTREAM_SPECS", (spec,))
    monkeypatch.setenv("ANNBENCH_SOURCE_DIR", str(tmp_path / "mirror"))
    p = prepare("toy-8-euclidean", tmp_path / "data", None)
    assert server.requests == []
    assert p.how == f"built from source folder {tmp_path / 'mirror'}"


def test_offline_error_names_url_and_source_dir(tmp_path, monkeypatch):
    down = closed_port_url("/")
    spec = _toy_spec(prebuilt=down + "toy.hdf5", urls=(down,))
    monkeypatch.setattr(upstream, "UPSTREAM_SPECS", (spec,))
    from annbench.core.errors import UserError

    with pytest.raises(UserError) as e:
        prepare("toy-8-euclidean", tmp_path / "data", tmp_path)
    msg = str(e.value)
    assert down + "toy.hdf5" in msg and down + "toy_base.fvecs" in msg
    assert "--source-dir DIR" in msg and "toy/toy_base.fvecs" in msg and f"{tmp_path} lacks toy_base.fvecs" in msg
    assert not (tmp_path / "data" / "toy-8-euclidean.hdf5").exists()
