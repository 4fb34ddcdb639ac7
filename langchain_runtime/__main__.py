"""``python -m langchain_runtime``: the ``langchain-runtime`` command line."""

from langchain_runtime.cli import main

if __name__ == "__main__":
    main()
