"""Drives a running veil-server (or `veil proxy`) with the unmodified `langchain-openai` package.

Environment: OPENAI_BASE_URL (…/v1), OPENAI_API_KEY (a Veil API key), VEIL_MODEL (the model id).
Exits non-zero on the first failed assertion.
"""

import os

from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

llm = ChatOpenAI(
    model=os.environ["VEIL_MODEL"],
    base_url=os.environ["OPENAI_BASE_URL"],
    api_key=os.environ["OPENAI_API_KEY"],
    temperature=0,
    max_tokens=96,
    timeout=120,
    max_retries=0,
)

# invoke and stream give the same answer.
answer = llm.invoke("What is the capital of France?")
assert isinstance(answer.content, str) and answer.content, answer
streamed = "".join(c.content for c in llm.stream("What is the capital of France?"))
assert streamed == answer.content, (streamed, answer.content)


# Structured output: a pydantic model back, valid by construction.
class City(BaseModel):
    """A city and its country."""

    name: str = Field(max_length=24)
    country: str = Field(max_length=24)


city = llm.with_structured_output(City).invoke("Tell me about Paris.")
assert isinstance(city, City) and city.name, city


# Tools: bind_tools, a required call, the arguments parsed.
class GetWeather(BaseModel):
    """The current weather in a city."""

    city: str = Field(max_length=32)


message = llm.bind_tools([GetWeather], tool_choice="any").invoke("What is the weather in Paris?")
assert len(message.tool_calls) == 1, message
call = message.tool_calls[0]
assert call["name"] == "GetWeather" and isinstance(call["args"]["city"], str), call

print("langchain-openai OK:", city.name, call["args"])
