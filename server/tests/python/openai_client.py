"""Drives a running veil-server with the unmodified `openai` package.

Environment: OPENAI_BASE_URL (…/v1), OPENAI_API_KEY (a Veil API key), VEIL_MODEL (the model id).
Exits non-zero on the first failed assertion.
"""

import os

import openai

client = openai.OpenAI(timeout=120, max_retries=0)
model = os.environ["VEIL_MODEL"]

# A wrong key is refused with OpenAI's 401 (the client raises AuthenticationError).
wrong = openai.OpenAI(api_key="veil_sk_" + "0" * 43, timeout=120, max_retries=0)
try:
    wrong.models.list()
    raise AssertionError("a wrong API key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401, e
    assert getattr(e, "code", "invalid_api_key") == "invalid_api_key", e

ids = [m.id for m in client.models.list()]
assert model in ids, ids
assert client.models.retrieve(model).id == model

# A parameter that would change the answer but is not implemented is refused by name,
# never ignored: asking for JSON must not quietly return prose.
for extra, param in [
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
]:
    try:
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=2,
            **extra,
        )
        raise AssertionError(f"{param} was accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400, e
        assert e.param == param, (e.param, param)
        assert e.code == "unsupported_parameter", e

messages = [{"role": "user", "content": "What is the capital of France?"}]
chat = client.chat.completions.create(
    model=model, messages=messages, max_tokens=24, temperature=0
)
text = chat.choices[0].message.content
assert isinstance(text, str) and text, chat
assert chat.choices[0].finish_reason in ("stop", "length"), chat
assert 0 < chat.usage.completion_tokens <= 24, chat.usage
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

stream = client.chat.completions.create(
    model=model,
    messages=messages,
    max_tokens=24,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
parts, finish, usage = [], None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
assert "".join(parts) == text, ("".join(parts), text)
assert finish == chat.choices[0].finish_reason, finish
assert usage is not None and usage.completion_tokens == chat.usage.completion_tokens, usage

completion = client.completions.create(
    model=model, prompt="Once upon a time", max_tokens=8, temperature=0
)
assert completion.choices[0].finish_reason == "length", completion
assert completion.usage.completion_tokens == 8, completion.usage
assert completion.choices[0].text, completion

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404

print("openai client OK:", len(text), "characters,", chat.usage.completion_tokens, "tokens")
