# %% [markdown]
# # Routing a chat history
#
# A task whose output is a list of chat messages hands it to its dependents as a
# list: a `MessagesPlaceholder` receives the messages themselves (not their joined
# text), and a `keep_last_n` context policy trims the history before the call, always
# keeping the system message. A `{history}` in a plain template still gets text.
# Runs offline; cells are marked with `# %%` so Jupyter and VS Code open it as a
# notebook.

# %%
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from langchain_runtime import ContextPolicy, Orchestrator, Task
from langchain_runtime.testing import ScriptedChatModel


def load_conversation(inp: dict[str, Any]) -> list[BaseMessage]:
    """Stands in for a chat store: the conversation so far."""
    return [
        SystemMessage("You are a concise naturalist. Answer in one sentence."),
        HumanMessage("Where do barn owls nest?"),
        AIMessage("In barns, church towers and hollow trees."),
        HumanMessage("What do they eat?"),
        AIMessage("Mostly voles, shrews and mice."),
        HumanMessage("Do they hunt by sight?"),
        AIMessage("Mostly by sound: their hearing finds prey in the dark."),
    ]


class ShowPrompt(BaseCallbackHandler):
    """Prints what each chat model call is sent."""

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        for message in messages[0]:
            print(f"  {message.type:>6}: {message.text}")


chat = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{question}")])
answerer = ScriptedChatModel(
    responses=["A family can eat thousands of rodents a year."], model_name="gpt-4o-mini"
)
summarizer = ScriptedChatModel(responses=["Barn owls: nests, diet, hunting."])
tasks = [
    Task("conversation", load_conversation),
    Task(
        "answer",
        prompt=chat,
        model=answerer,
        deps=["conversation"],
        inputs={"history": "conversation"},
        # the last 2 turns and the system message are all the model needs
        context=ContextPolicy(strategy="keep_last_n", keep_last_n=2),
    ),
    Task(
        "recap",
        prompt="Recap this conversation in a few words:\n{conversation}",
        model=summarizer,
        deps=["conversation"],
    ),
]
orchestrator = Orchestrator(tasks)

# %%
print("sent:")
result = orchestrator.invoke({"question": "How many do they eat?"}, {"callbacks": [ShowPrompt()]})
print("answer:", result["answer"].content)
print("recap:", result["recap"].content)

# %%
trim = result.tasks["answer"].compaction
assert trim is not None
history = trim["variables"]["history"]
print(
    f"history {history['action']}: {history['tokens_before']} -> {history['tokens_after']} tokens"
)
print("run cost:", result.cost)
