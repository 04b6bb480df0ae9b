#!/usr/bin/env python3
"""Writes an OCI image layout holding one image in the MCR shape of an SDK: its single layer
is a filesystem tar (gzip) with one file, the SDK tarball, as `FROM scratch` + `COPY` makes
it. The benchmark pushes it with `skopeo copy oci:LAYOUT:latest docker://…`.

usage: fs_layer_image.py LAYOUT TARBALL MEMBER_NAME VERSION
"""

import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile

CHUNK = 1 << 20


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def put_file(layout, path):
    """Moves `path` into the layout's blobs; returns (digest, size)."""
    digest = sha256_of(path)
    size = os.path.getsize(path)
    shutil.move(path, os.path.join(layout, "blobs", "sha256", digest))
    return "sha256:" + digest, size


def put_json(layout, value):
    data = json.dumps(value, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def main():
    layout, tarball, member, version = sys.argv[1:5]
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=layout) as tmp:
        plain = os.path.join(tmp, "layer.tar")
        with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as tar:
            info = tar.gettarinfo(tarball, arcname=member)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with open(tarball, "rb") as f:
                tar.addfile(info, f)
        diff_id = "sha256:" + sha256_of(plain)
        packed = os.path.join(tmp, "layer.tar.gz")
        # Docker and BuildKit compress layers at gzip's default level.
        with open(plain, "rb") as src, open(packed, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        layer_digest, layer_size = put_file(layout, packed)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.oryx.version": version}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_digest, config_size = put_json(layout, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }
    manifest_digest, manifest_size = put_json(layout, manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(layer_size)


if __name__ == "__main__":
    main()
