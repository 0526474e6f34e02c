"""Title vectors: a tie broken by each chunk's own text, nothing else moved."""

import numpy as np

from kb.retrieval.embedders import break_title_ties


def _unit(*xs):
    v = np.asarray(xs, dtype=np.float32)
    return list(map(float, v / np.linalg.norm(v)))


def test_chunks_of_one_section_get_distinct_title_vectors_ordered_by_their_text():
    title = _unit(1, 0, 0)
    texts = [_unit(0, 1, 0), _unit(0, 0, 1)]
    first, second = break_title_ties([title, title], texts)
    assert first != second
    assert abs(np.linalg.norm(first) - 1) < 1e-6
    query = np.asarray(_unit(1, 0.2, 0))  # nearer the first chunk's text
    assert np.dot(query, first) > np.dot(query, second)
    # The title still decides: each stays within a thousandth of the shared title vector.
    assert np.dot(first, title) > 0.999 and np.dot(second, title) > 0.999


def test_different_titles_keep_their_order():
    near, far = _unit(1, 0.1, 0), _unit(1, 0.5, 0)
    text = _unit(0, 0, 1)
    query = np.asarray(_unit(1, 0, 0))
    a, b = break_title_ties([near, far], [text, text])
    assert np.dot(query, a) > np.dot(query, b)
    assert break_title_ties([], []) == []
