"""The baseline: the same model served by a bare Starlette app in-process (no authentication, limits,
validation, isolation, protection or audit). ``python bare_server.py MODEL.joblib PORT``."""

from __future__ import annotations

import sys

import joblib
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

model = joblib.load(sys.argv[1])  # our own file, written by the benchmark a moment ago


async def predict(request: Request) -> JSONResponse:
    body = await request.json()
    batch = np.asarray(body["inputs"], dtype=float)
    labels = model.predict(batch).tolist()
    probabilities = model.predict_proba(batch).tolist()
    outputs = [{"label": label, "probabilities": p} for label, p in zip(labels, probabilities, strict=True)]
    return JSONResponse({"outputs": outputs})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])

if __name__ == "__main__":
    # The same event loop and HTTP parser as Bastion's server, so the comparison is of the pipeline alone.
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
        loop="uvloop", http="httptools",
    )  # fmt: skip
