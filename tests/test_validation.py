"""The validator cache: a schema's compiled validator is never handed to another schema."""

from __future__ import annotations

import gc

import pytest

from shared.core import validation
from shared.core.errors import ApiError


def test_a_collected_schema_does_not_lend_its_validator_to_the_next():
    # CPython gives a freed dict's memory, and so its id, to the next dict of its size: keyed
    # by id alone, `second` was checked with `first`'s validator (integers) in the first round;
    # a few rounds make it certain (each gc.collect walks the whole test session's heap).
    for _ in range(5):
        first = validation.obj({"n": {"type": "integer"}})
        validation.check(first, {"n": 1})
        del first
        gc.collect()
        second = validation.obj({"n": {"type": "string"}})
        with pytest.raises(ApiError):
            validation.check(second, {"n": 1})
        assert validation.check(second, {"n": "x"}) == {"n": "x"}
