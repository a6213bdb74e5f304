"""The parsed lists kept between upload and Start: bounded by bytes, least recently used out."""

from __future__ import annotations

import tracemalloc

from services.bulk_plan import Source, SourceCache, parse_source


def source(rows: int, key: str = "k", name_length: int = 10) -> Source:
    lines = ["phone,name,city"]
    lines += [f"99890{n:07d},{'N' * name_length}{n},Tashkent" for n in range(rows)]
    return parse_source(("\n".join(lines) + "\n").encode(), "list.csv", key, 100_000)


def test_the_estimate_follows_what_a_list_really_holds() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        big = source(5_000, name_length=40)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert 0.5 < big.approx_bytes / held < 2.0


def test_lists_past_the_budget_go_least_recently_used_first_and_are_reported() -> None:
    one = source(1_000)
    cache = SourceCache(budget=int(one.approx_bytes * 2.5))  # two lists fit, three do not
    cache.put(1, one)
    cache.put(2, source(1_000, key="b"))
    assert cache.get(1, "k") is one  # now user 2's list is the least recently used
    cache.put(3, source(1_000, key="c"))

    assert cache.used <= int(one.approx_bytes * 2.5)
    assert cache.get(2, "b") is None and cache.evicted(2, "b")
    assert cache.get(1, "k") is one and not cache.evicted(1, "k")
    assert cache.get(3, "c") is not None
    cache.put(2, source(1_000, key="b2"))  # a new upload clears the note
    assert not cache.evicted(2, "b")


def test_a_list_bigger_than_the_budget_is_kept_alone_for_its_user() -> None:
    cache = SourceCache(budget=1)
    cache.put(1, source(10))
    big = source(100, key="big")
    cache.put(2, big)

    assert cache.get(2, "big") is big
    assert cache.evicted(1, "k")
    cache.drop(2)
    assert cache.used == 0
