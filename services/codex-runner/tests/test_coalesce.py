from codex_broker.codex_runner.coalesce import DeltaCoalescer


def test_holds_until_size_bound() -> None:
    c = DeltaCoalescer(flush_s=0.1, flush_bytes=10)
    assert not c.add("hello", now=0.0)
    assert c.add(" world", now=0.01)  # 11 bytes ≥ 10
    assert c.take() == "hello world"
    assert not c.pending and c.due_at() is None


def test_due_after_interval_since_first_piece() -> None:
    c = DeltaCoalescer(flush_s=0.1, flush_bytes=2048)
    c.add("a", now=1.0)
    c.add("b", now=1.05)
    assert c.due_at() == 1.1
    assert not c.is_due(1.09) and c.is_due(1.1)
    assert c.take() == "ab"
    c.add("c", now=2.0)
    assert c.due_at() == 2.1


def test_counts_bytes_not_characters_and_ignores_empty() -> None:
    c = DeltaCoalescer(flush_s=1, flush_bytes=4)
    assert not c.add("", now=0.0) and not c.pending
    assert c.add("éé", now=0.0)  # 4 bytes in UTF-8
