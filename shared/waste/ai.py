"""The AI provider: an OpenAI-compatible Chat Completions model that looks, chooses and phrases.

`describe` asks a vision model what an item is (name, material, condition tags from the
upstream taxonomy) and gets strict JSON back; `choose` shows it the dictionary's candidates for
that description and lets it pick one guide id or none (text only, the id checked against the
list): the model chooses from the dictionary, it never writes rules. `phrase` lets a model say
the official steps in a friendly voice, never adding rules of its own. Each call reports the
tokens it used, so a job's cost is recorded. The `openai` client is imported on first use
only (it costs most of a cold start). Timeouts, retries with backoff on 429/5xx (the client's
own) and a bounded token budget keep a slow model from holding a job hostage; failures come
out as `ModelError` with the job's failure code. Every call counts against the deployment's
budget (budget.py), and none is made while it is spent.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from shared.core import telemetry
from shared.core.settings import settings
from shared.waste import budget, dictionary

MAX_DESCRIBE_TOKENS = 300
MAX_CHOOSE_TOKENS = 60  # {"guide_id": "item-guide-0123"} and no more
MAX_PHRASE_TOKENS = 250
RETRIES = 2


@dataclass(frozen=True)
class Answer:
    """What a call returned, and what it cost."""

    value: Any
    tokens: int


class ModelError(Exception):
    """A model call that failed for good, with the code the job fails with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def configured() -> bool:
    return settings().openai_api_key is not None


@cache
def _client() -> Any:
    from openai import OpenAI

    s = settings()
    return OpenAI(
        api_key=s.openai_api_key,
        base_url=s.openai_base_url,
        timeout=s.openai_timeout,
        max_retries=RETRIES,
    )


def taxonomy() -> tuple[list[str], list[str]]:
    """(middle categories, situation tags) the vision prompt lets the model choose from."""
    return dictionary.terms("middle"), dictionary.terms("tag")


def _describe_prompt(hint: str | None) -> list[dict[str, Any]]:
    middles, tags = taxonomy()
    system = (
        "너는 한국의 분리배출 도우미다. 사진 속 폐기물 하나를 보고 JSON으로만 답한다: "
        '{"name": 한국어 품목명(예: 페트병, 우유팩, 건전지), "material": 재질, '
        '"category": 아래 중분류 중 하나, "tags": 아래 상황 태그 중 해당하는 것들, '
        '"confidence": 0과 1 사이}. 배출 방법은 쓰지 않는다.\n'
        f"중분류: {', '.join(middles)}\n상황 태그: {', '.join(tags)}"
    )
    text = "이 물건은 무엇인가요?" + (f" 사용자 힌트: {hint}" if hint else "")
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def _call(
    task: str, messages: list[dict[str, Any]], max_tokens: int, json_mode: bool
) -> tuple[str, int]:
    """The answer's text and the tokens it cost (prompt and completion), counted against the
    deployment's budget; no call at all while that budget is spent. Each call is a span in the
    job's trace and is counted with its tokens and estimated cost, per model."""
    model = settings().openai_model
    telemetry.annotate(model=model)  # on the stage's span
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
    with telemetry.span(f"model {task}", "client", attributes=attributes):
        try:
            text, sent, answered = _ask(model, messages, max_tokens, json_mode)
        except ModelError as exc:
            telemetry.annotate(failure_code=exc.code)
            telemetry.count(telemetry.MODEL_CALLS, model=model, outcome=exc.code)
            raise
        telemetry.annotate(tokens_in=sent, tokens_out=answered)
    telemetry.count(telemetry.MODEL_CALLS, model=model, outcome="ok")
    telemetry.count(telemetry.MODEL_TOKENS, sent, model=model, direction="in")
    telemetry.count(telemetry.MODEL_TOKENS, answered, model=model, direction="out")
    price = settings().model_prices.get(model)
    if price:
        cost = (sent * price[0] + answered * price[1]) / 1_000_000
        telemetry.count(telemetry.MODEL_COST, cost, model=model)
    return text, sent + answered


def _ask(
    model: str, messages: list[dict[str, Any]], max_tokens: int, json_mode: bool
) -> tuple[str, int, int]:
    """The answer's text and its prompt and completion tokens."""
    import openai

    spent = budget.exhausted()
    if spent is not None:
        raise ModelError(
            budget.CODE,
            f"the model budget per {spent.window} is spent ({spent.used} of {spent.limit} "
            f"tokens); it frees up in {spent.retry_after} s",
        )
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    if json_mode:
        body["response_format"] = {"type": "json_object"}
    try:
        # The client's plain post (its documented way to any endpoint), not `chat.completions
        # .create`: the same request, auth, retries and errors, without re-walking the messages
        # against their TypedDicts. `cast_to=bytes` hands back the body as it came: the reply
        # is read as plain JSON here, not built into the client's pydantic models (about 50 us
        # of CPU a call on this machine, three calls a job), and its shape is checked by us.
        reply = _client().post("/chat/completions", body=body, cast_to=bytes)
    except openai.RateLimitError as exc:
        raise ModelError("MODEL_RATE_LIMITED", f"the model is rate limited: {exc}") from exc
    except openai.APITimeoutError as exc:
        raise ModelError("VISION_TIMEOUT", "the model did not answer in time") from exc
    except openai.AuthenticationError as exc:
        raise ModelError("VISION_UNAVAILABLE", "the model rejected OPENAI_API_KEY") from exc
    except openai.BadRequestError as exc:
        raise ModelError("IMAGE_UNREADABLE", f"the model could not read the image: {exc}") from exc
    except openai.APIError as exc:  # connection errors and 5xx after the client's retries
        raise ModelError("VISION_FAILED", f"the model call failed: {exc}") from exc
    text, sent, answered = _read(reply)
    budget.spend(sent + answered)
    return text, sent, answered


def _read(reply: bytes) -> tuple[str, int, int]:
    """The answer's text and its prompt and completion tokens from a Chat Completions reply,
    checked by hand: a reply that is not one (not JSON, no choices, another shape) fails the
    job with VISION_FAILED and says what was wrong, and a reply without `usage` counts 0
    tokens (the answer is kept: it was given, and the job should not fail for the bill)."""
    try:
        data = json.loads(reply)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError("VISION_FAILED", "the model's reply was not JSON") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        raise ModelError("VISION_FAILED", "the model's reply had no choices")
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str) or not text:
        raise ModelError("VISION_FAILED", "the model returned no answer")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return text, _tokens(usage.get("prompt_tokens")), _tokens(usage.get("completion_tokens"))


def _tokens(value: Any) -> int:
    """A token count as the reply gives it; anything but a count of tokens is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def describe(image: bytes, content_type: str, hint: str | None = None) -> Answer:
    """`{name, material, category, tags, confidence}` of the item in the image."""
    messages = _describe_prompt(hint)
    data_url = f"data:{content_type};base64,{base64.b64encode(image).decode()}"
    messages[1]["content"] = [
        {"type": "text", "text": messages[1]["content"]},
        {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}},
    ]
    raw, tokens = _call("describe", messages, MAX_DESCRIBE_TOKENS, json_mode=True)
    try:
        answer = json.loads(raw)
    except json.JSONDecodeError:
        raise ModelError("VISION_MALFORMED", "the model's answer was not JSON") from None
    name = answer.get("name") if isinstance(answer, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise ModelError("VISION_MALFORMED", "the model's answer names no item")
    _, known_tags = taxonomy()
    tags = answer.get("tags") if isinstance(answer.get("tags"), list) else []
    confidence = answer.get("confidence")
    description = {
        "name": name.strip()[:100],
        "material": str(answer.get("material") or "")[:50] or None,
        "category": str(answer.get("category") or "")[:50] or None,
        "tags": [t for t in tags if t in known_tags],
        "confidence": float(confidence) if isinstance(confidence, int | float) else None,
    }
    return Answer(description, tokens)


def choose(description: dict[str, Any], candidates: list[dict[str, Any]]) -> Answer:
    """The candidate's guide id that fits the described item, or None when none does. An id
    outside the candidates, or an answer that is not the asked-for JSON, counts as none: the
    dictionary's answer is then not confirmed, never invented."""
    system = (
        "너는 한국의 분리배출 도우미다. 사진 속 물건의 설명과 공식 품목사전의 후보들이 주어진다. "
        "설명에 맞는 후보 하나의 guide_id를 고른다. 깨짐, 오염 같은 상태가 배출 방법을 바꾸면 "
        "그 상태에 맞는 후보를 고른다. 맞는 후보가 없으면 none이라고 답한다. "
        'JSON으로만 답한다: {"guide_id": "후보의 guide_id 또는 none"}'
    )
    listing = [
        {
            "guide_id": c["guide_id"],
            "name": c["name"],
            "category": c["category"],
            "summary": c["summary"],
        }
        for c in candidates
    ]
    item = {k: description.get(k) for k in ("name", "material", "category", "tags")}
    messages = [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": json.dumps({"item": item, "candidates": listing}, ensure_ascii=False),
        },
    ]
    raw, tokens = _call("choose", messages, MAX_CHOOSE_TOKENS, json_mode=True)
    try:
        picked = json.loads(raw).get("guide_id")
    except (json.JSONDecodeError, AttributeError):
        return Answer(None, tokens)
    allowed = {c["guide_id"] for c in candidates}
    return Answer(picked if picked in allowed else None, tokens)


def phrase(item: str, steps: list[str], cautions: list[str]) -> Answer:
    """A short friendly answer built from the official steps only."""
    messages = [
        {
            "role": "system",
            "content": (
                "너는 친근한 분리배출 도우미다. 주어진 공식 배출 방법만 바탕으로 2~3문장으로 "
                "안내한다. 주어진 내용에 없는 규칙은 절대 만들지 않는다."
            ),
        },
        {
            "role": "user",
            "content": json.dumps(
                {"품목": item, "배출방법": steps, "주의사항": cautions}, ensure_ascii=False
            ),
        },
    ]
    text, tokens = _call("phrase", messages, MAX_PHRASE_TOKENS, json_mode=False)
    return Answer(text.strip(), tokens)
