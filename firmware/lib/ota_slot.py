# One A/B slot being filled by an update: the stream (manifest, then the files in its order)
# written into ota/<slot>/, then every file hashed again from the flash (docs/ota.md).
import hashlib
import os

from micropython import const

from sgcore import ota_bundle as ob

_HASH_READ = const(1024)


def mkdirs(path):
    at = 0
    while True:
        at = path.find("/", at + 1)
        if at < 0:
            return
        try:
            os.mkdir(path[:at])
        except OSError:
            pass


def rmtree(path):
    try:
        for entry in os.ilistdir(path):
            sub = path + "/" + entry[0]
            if entry[1] == 0x4000:
                rmtree(sub)
            else:
                os.remove(sub)
        os.rmdir(path)
    except OSError:
        pass


class Slot:
    """Writes chunks at their stream offsets; a method returning a string refuses the update."""

    def __init__(self, slot, offer):
        self.slot, self.offer, self.files = slot, offer, None
        self._file, self._hash, self._pos = 0, hashlib.sha256(), 0

    def write(self, start, data):
        o, at = self.offer, 0
        if start < o.manifest_len:
            at = min(len(data), o.manifest_len - start)
            self._put("MANIFEST", start, data[:at])
            if start + at == o.manifest_len:
                bad = self.load_manifest()
                if bad:
                    return bad
        for path, size, _sha, first in self.files or ():
            if at >= len(data):
                break
            off = start + at - first
            if 0 <= off < size:
                n = min(size - off, len(data) - at)
                self._put(path, off, data[at : at + n])
                at += n
        return None

    def _put(self, path, off, piece):
        name = "ota/%s/%s" % (self.slot, path)
        if off == 0:
            mkdirs(name)
        with open(name, "wb" if off == 0 else "r+b") as f:
            if off:
                f.seek(off)
            f.write(piece)

    def load_manifest(self):
        o = self.offer
        with open("ota/%s/MANIFEST" % self.slot, "rb") as f:
            manifest = f.read()
        if hashlib.sha256(manifest).digest() != o.manifest_sha256:
            return "manifest does not match the signed offer"
        try:
            files = ob.parse_manifest(manifest, o.stream_len)
        except ValueError as exc:
            return "bad manifest (%s)" % exc
        first, self.files = o.manifest_len, []
        for path, size, sha in files:
            self.files.append((path, size, sha, first))
            first += size
        return None

    def check_step(self):
        """Hash a slice of the next file from the flash: None while working, True when every
        file matches, or the reason it does not."""
        path, size, sha, _first = self.files[self._file]
        with open("ota/%s/%s" % (self.slot, path), "rb") as f:
            f.seek(self._pos)
            piece = f.read(_HASH_READ)
        self._hash.update(piece)
        self._pos += len(piece)
        if piece and self._pos < size:
            return None
        if self._pos != size or self._hash.digest() != sha:
            return "%s does not match its hash" % path
        self._file, self._hash, self._pos = self._file + 1, hashlib.sha256(), 0
        return True if self._file == len(self.files) else None
