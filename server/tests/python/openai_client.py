"""Drives a running veil-server with the unmodified `openai` package.

Environment: OPENAI_BASE_URL (…/v1), OPENAI_API_KEY (a Veil API key), VEIL_MODEL (the model id).
Exits non-zero on the first failed assertion.
"""

import json
import os

import openai
from pydantic import BaseModel, Field

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
    ({"prediction": {"type": "content", "content": "Paris"}}, "prediction"),
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

# Log probabilities: chat, whole and streamed.
lp = client.chat.completions.create(
    model=model, messages=messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3
)
content = lp.choices[0].logprobs.content
assert content and len(content) == lp.usage.completion_tokens, lp
for t in content:
    assert t.logprob <= 0, t
    assert len(t.top_logprobs) == 3, t
    assert t.logprob == max(a.logprob for a in t.top_logprobs), t
    assert t.top_logprobs[0].token == t.token, t
    assert isinstance(t.bytes, list), t
stream = client.chat.completions.create(
    model=model,
    messages=messages,
    max_tokens=6,
    temperature=0,
    logprobs=True,
    top_logprobs=3,
    stream=True,
)
streamed = [
    t
    for chunk in stream
    for choice in chunk.choices
    if choice.logprobs is not None and choice.logprobs.content
    for t in choice.logprobs.content
]
assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in content]
for bad in [{"top_logprobs": 21}, {"top_logprobs": -1}]:
    try:
        client.chat.completions.create(
            model=model, messages=messages, max_tokens=2, logprobs=True, **bad
        )
        raise AssertionError(f"{bad} was accepted")
    except openai.BadRequestError as e:
        assert e.param == "top_logprobs", e

# Log probabilities: completions.
c = client.completions.create(
    model=model, prompt="Once upon a time", max_tokens=4, temperature=0, logprobs=2
)
clp = c.choices[0].logprobs
assert len(clp.tokens) == len(clp.token_logprobs) == len(clp.top_logprobs) == 4, clp
assert clp.text_offset[0] == 0 and all(x <= 0 for x in clp.token_logprobs), clp
assert all(1 <= len(top) <= 3 for top in clp.top_logprobs), clp
try:
    client.completions.create(model=model, prompt="Hi", max_tokens=2, logprobs=6)
    raise AssertionError("logprobs=6 was accepted")
except openai.BadRequestError as e:
    assert e.param == "logprobs", e

# n choices and seed: the same seed gives the same choices.
multi = [
    client.chat.completions.create(
        model=model, messages=messages, max_tokens=6, n=3, seed=7, temperature=1
    )
    for _ in range(2)
]
assert [c.index for c in multi[0].choices] == [0, 1, 2], multi[0]
assert [c.message.content for c in multi[0].choices] == [
    c.message.content for c in multi[1].choices
]

# Structured outputs: parse() with a pydantic model (the package turns it into a strict
# json_schema and parses the answer back), json_object, and a streamed schema answer.
class City(BaseModel):
    name: str = Field(max_length=24)
    country: str = Field(max_length=24)
    founded: int = Field(ge=-3000, le=2025)


city_messages = [{"role": "user", "content": "Tell me about Paris."}]
parsed = client.chat.completions.parse(
    model=model, messages=city_messages, response_format=City, max_tokens=96, temperature=0
)
city = parsed.choices[0].message.parsed
assert isinstance(city, City) and city.name, parsed
obj = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Give me a JSON object with two colors."}],
    response_format={"type": "json_object"},
    max_tokens=160,
    temperature=0.8,
    seed=7,
)
# Any object is allowed: one cut by max_tokens is an object's beginning.
if obj.choices[0].finish_reason == "stop":
    assert isinstance(json.loads(obj.choices[0].message.content), dict), obj
else:
    assert obj.choices[0].message.content.startswith("{"), obj
schema_format = {
    "type": "json_schema",
    "json_schema": {"name": "city", "strict": True, "schema": City.model_json_schema()},
}
streamed_json = "".join(
    choice.delta.content or ""
    for chunk in client.chat.completions.create(
        model=model,
        messages=city_messages,
        response_format=schema_format,
        max_tokens=96,
        temperature=0,
        stream=True,
    )
    for choice in chunk.choices
)
assert City.model_validate_json(streamed_json) == city, streamed_json
try:
    client.chat.completions.create(
        model=model,
        messages=city_messages,
        max_tokens=8,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "n", "schema": {"type": "integer", "minimum": 5, "maximum": 1}},
        },
    )
    raise AssertionError("an unsatisfiable schema was accepted")
except openai.BadRequestError as e:
    assert e.param == "response_format", e

# Tools: a required call (plain and through parse() with a pydantic tool), its result sent
# back in the history, and a streamed call assembled from its deltas.
class GetWeather(BaseModel):
    city: str = Field(max_length=32)
    unit: str = Field(pattern="^(celsius|fahrenheit)$")


weather_tool = openai.pydantic_function_tool(GetWeather)
question = [{"role": "user", "content": "What is the weather in Paris?"}]
called = client.chat.completions.parse(
    model=model,
    messages=question,
    tools=[weather_tool],
    tool_choice="required",
    max_tokens=96,
    temperature=0,
)
assert called.choices[0].finish_reason == "tool_calls", called
tc = called.choices[0].message.tool_calls[0]
assert tc.function.name == "GetWeather", tc
assert isinstance(tc.function.parsed_arguments, GetWeather), tc
assert json.loads(tc.function.arguments) == tc.function.parsed_arguments.model_dump(), tc
followup = client.chat.completions.create(
    model=model,
    messages=question
    + [called.choices[0].message, {"role": "tool", "tool_call_id": tc.id, "content": "18 C"}],
    tools=[weather_tool],
    max_tokens=48,
    temperature=0,
)
assert followup.choices[0].finish_reason in ("stop", "tool_calls", "length"), followup
streamed_calls = [
    d
    for chunk in client.chat.completions.create(
        model=model,
        messages=question,
        tools=[weather_tool],
        tool_choice="required",
        max_tokens=96,
        temperature=0,
        stream=True,
    )
    for choice in chunk.choices
    for d in (choice.delta.tool_calls or [])
]
assert len(streamed_calls) == 1 and streamed_calls[0].index == 0, streamed_calls
assert streamed_calls[0].function.name == "GetWeather", streamed_calls
assert json.loads(streamed_calls[0].function.arguments) == json.loads(tc.function.arguments)

# The Responses API, whole and streamed.
r = client.responses.create(
    model=model,
    input="What is the capital of France?",
    instructions="Answer in one short sentence.",
    max_output_tokens=16,
    temperature=0,
)
assert r.object == "response" and r.output_text, r
assert r.status in ("completed", "incomplete"), r
assert 0 < r.usage.output_tokens <= 16, r.usage
assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
events = list(
    client.responses.create(
        model=model,
        input=[
            {"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": [{"type": "input_text", "text": "What is the capital of France?"}]},
        ],
        max_output_tokens=16,
        temperature=0,
        stream=True,
    )
)
types = [e.type for e in events]
assert types[:4] == [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
], types
assert types[-4:-1] == [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
], types
assert types[-1] in ("response.completed", "response.incomplete"), types
deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
assert deltas == r.output_text, (deltas, r.output_text)
assert events[-1].response.output_text == r.output_text
assert events[-1].response.usage.output_tokens == r.usage.output_tokens
assert [e.sequence_number for e in events] == list(range(len(events)))
for extra, param in [
    ({"store": True}, "store"),
    ({"previous_response_id": "resp_0"}, "previous_response_id"),
    ({"tools": [{"type": "web_search"}]}, "tools"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format"),
]:
    try:
        client.responses.create(model=model, input="Hi", max_output_tokens=2, **extra)
        raise AssertionError(f"{param} was accepted")
    except openai.BadRequestError as e:
        assert e.param == param, (e.param, param)

r = client.responses.parse(
    model=model, input="Tell me about Paris.", text_format=City, max_output_tokens=96, temperature=0
)
assert r.output_parsed == city, r

# Responses tools: a function call item, then its output sent back as input items.
weather_fn = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city",
    # Closed, as strict mode asks: an open schema lets a small model add properties.
    "parameters": {**GetWeather.model_json_schema(), "additionalProperties": False},
    "strict": True,
}
r = client.responses.create(
    model=model,
    input="What is the weather in Paris?",
    tools=[weather_fn],
    tool_choice="required",
    max_output_tokens=96,
    temperature=0,
)
fc = r.output[0]
assert fc.type == "function_call" and fc.name == "get_weather", r
GetWeather.model_validate_json(fc.arguments)
r = client.responses.create(
    model=model,
    input=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": fc.call_id, "name": fc.name, "arguments": fc.arguments},
        {"type": "function_call_output", "call_id": fc.call_id, "output": "18 C"},
    ],
    tools=[weather_fn],
    max_output_tokens=32,
    temperature=0,
)
assert r.output[0].type in ("message", "function_call"), r

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404

print("openai client OK:", len(text), "characters,", chat.usage.completion_tokens, "tokens")
