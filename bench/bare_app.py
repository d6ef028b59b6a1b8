"""The framework ceiling: a bare FastAPI endpoint answering a payload the size of a 20-feature read."""

from fastapi import FastAPI

app = FastAPI()

PAYLOAD = {
    "bright_uid": "bench-1",
    "category": "user_features",
    "features": {"data": {f"feature_{index:02d}": index * 1.5 for index in range(20)}, "metadata": {}},
}


@app.get("/api/v1/health")
async def health() -> dict:
    return {"status": "healthy"}


@app.get("/bare/{entity_value}/{category}")
async def bare(entity_value: str, category: str) -> dict:  # noqa: ARG001 (path parameters)
    return PAYLOAD
