"""streams.app.key_partitioner puts every key where aiokafka's DefaultPartitioner (Kafka's
murmur2) does, so other clients and seatflow agree on a key's partition."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from streams.app import key_partitioner


def test_every_key_goes_where_the_default_partitioner_puts_it() -> None:
    rng = random.Random(7)
    keys = [f"b-{i}".encode() for i in range(300)] + [
        rng.randbytes(rng.randrange(0, 64)) for _ in range(300)]
    for partitions in ([0], list(range(3)), list(range(8)), list(range(12))):
        for key in keys + keys:  # twice: the remembered hash gives the same answer
            assert key_partitioner(key, partitions, partitions) == \
                DefaultPartitioner()(key, partitions, partitions), (key, partitions)


def test_keys_land_where_kafkas_java_client_puts_them() -> None:
    # Kafka's own murmur2 test vectors (UtilsTest): signed hash -> (hash & 0x7fffffff) % 8.
    vectors = {b"21": -973932308, b"foobar": -790332482,
               b"a-little-bit-long-string": -985981536, b"abc": 479470107}
    for key, java_hash in vectors.items():
        assert key_partitioner(key, list(range(8)), list(range(8))) == \
            (java_hash & 0x7FFFFFFF) % 8, key


def test_no_key_goes_to_an_available_partition() -> None:
    for _ in range(50):
        assert key_partitioner(None, [0, 1, 2, 3], [2]) == 2
