"""Reed–Solomon erasure coding with klauspost/reedsolomon's default matrix (what kcp-go's FEC uses).

Byte compatibility is the point: a parity shard must be the one Go computes, and a shard Go
lost must be rebuilt from Go's parity.  klauspost's ``New(data, parity)`` builds a
``(data+parity) x data`` Vandermonde matrix over GF(2^8) (field polynomial 0x11d, generator
2; entry ``[r][c] = r^c``), multiplies it by the inverse of its top square, so the top rows are
the identity (systematic) and the bottom rows make the parity.  PyPI's codecs do not offer
this: ``reedsolo`` is the polynomial (BCH-view) code for error correction, ``zfec`` uses its
own Vandermonde variant, so their parity bytes differ.  The field arithmetic here is small
(tables of 256 entries, matrices of 13 x 10); the per-byte work is C: multiplying a shard by a
constant is ``bytes.translate`` through that constant's 256-byte table, and adding shards is
XOR on Python integers.
"""

from typing import List, Optional, Sequence

POLYNOMIAL = 0x11D

_EXP = [0] * 512
_LOG = [0] * 256
_x = 1
for _i in range(255):
    _EXP[_i] = _x
    _LOG[_x] = _i
    _x <<= 1
    if _x & 0x100:
        _x ^= POLYNOMIAL
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]


def gf_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_inverse(a: int) -> int:
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^8)")
    return _EXP[255 - _LOG[a]]


def gf_pow(a: int, n: int) -> int:
    if n == 0:
        return 1
    if a == 0:
        return 0
    return _EXP[(_LOG[a] * n) % 255]


#: ``_TABLES[c]`` maps every byte b to c*b (for bytes.translate).
_TABLES = [bytes(gf_mul(c, b) for b in range(256)) for c in range(256)]

Matrix = List[List[int]]


def _multiply(a: Matrix, b: Matrix) -> Matrix:
    result = []
    for row in a:
        out = []
        for c in range(len(b[0])):
            value = 0
            for k, coefficient in enumerate(row):
                value ^= gf_mul(coefficient, b[k][c])
            out.append(value)
        result.append(out)
    return result


def _invert(matrix: Matrix) -> Matrix:
    """Gauss–Jordan over GF(2^8); raises ValueError for a singular matrix."""
    size = len(matrix)
    work = [list(row) + [1 if i == j else 0 for j in range(size)] for i, row in enumerate(matrix)]
    for col in range(size):
        pivot = next((r for r in range(col, size) if work[r][col]), None)
        if pivot is None:
            raise ValueError("singular matrix")
        work[col], work[pivot] = work[pivot], work[col]
        scale = gf_inverse(work[col][col])
        work[col] = [gf_mul(scale, v) for v in work[col]]
        for r in range(size):
            factor = work[r][col]
            if r != col and factor:
                work[r] = [v ^ gf_mul(factor, p) for v, p in zip(work[r], work[col])]
    return [row[size:] for row in work]


def _combine(coefficients: Sequence[int], shards: Sequence[bytes], size: int) -> bytes:
    """sum(coefficient * shard) over GF(2^8), for shards of ``size`` bytes."""
    total = 0
    for coefficient, shard in zip(coefficients, shards):
        if coefficient:
            total ^= int.from_bytes(shard.translate(_TABLES[coefficient]), "little")
    return total.to_bytes(size, "little")


class ReedSolomon:
    """klauspost/reedsolomon's code for ``dataShards`` + ``parityShards`` shards."""

    def __init__(self, dataShards: int, parityShards: int) -> None:
        if dataShards <= 0 or parityShards <= 0 or dataShards + parityShards > 256:
            raise ValueError(f"unsupported shard counts {dataShards}+{parityShards}")
        self.dataShards = dataShards
        self.parityShards = parityShards
        total = dataShards + parityShards
        vandermonde = [[gf_pow(r, c) for c in range(dataShards)] for r in range(total)]
        self.matrix = _multiply(vandermonde, _invert(vandermonde[:dataShards]))
        self._inverses: dict = {}

    def encode(self, data: Sequence[bytes]) -> List[bytes]:
        """The parity shards of ``dataShards`` equal-length data shards."""
        if len(data) != self.dataShards:
            raise ValueError(f"{len(data)} data shards, expected {self.dataShards}")
        size = len(data[0])
        return [_combine(row, data, size) for row in self.matrix[self.dataShards:]]

    def reconstructData(self, shards: Sequence[Optional[bytes]]) -> List[bytes]:
        """The data shards, from any ``dataShards`` present ones of equal length (None marks a
        missing shard); raises ValueError when too few are present."""
        present = [i for i, shard in enumerate(shards) if shard is not None][: self.dataShards]
        if len(present) < self.dataShards:
            raise ValueError(f"{len(present)} shards present, need {self.dataShards}")
        data = list(shards[: self.dataShards])
        if all(shard is not None for shard in data):
            return data
        key = tuple(present)
        inverse = self._inverses.get(key)
        if inverse is None:
            inverse = self._inverses[key] = _invert([self.matrix[i] for i in present])
        available = [shards[i] for i in present]
        size = len(available[0])
        return [shard if shard is not None else _combine(inverse[k], available, size) for k, shard in enumerate(data)]
