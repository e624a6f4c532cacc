"""The prepared device check: everything this project wants to know from a GPU machine lent
for a few minutes, in one run (``tools/device_check.sh``; docs/gpu.md says how to run it).

Parts, each with its own time budget and try/except, so one failure never loses the others'
results; the JSON is rewritten after every part (and inside the long ones):

``env``        versions, the GPU, onnxruntime's providers, TF32 settings (``env.py``).
``parity``     the shipped routed and mha models on the device against CPU on the same
               held-out windows: logits within the tolerance, decisions equal (``parity.py``).
``table7``     fp32, fp16, bf16 (autocast, routers in fp32: ``model.compress``) and 50 %
               structured pruning of both shipped models: accuracy on the held-out windows,
               batch-1 window latency, peak memory (``torch.cuda.max_memory_allocated``); for
               the routed model also fp32 with K fixed once (``table7.py``).
``bench``      ``mmtok bench`` (``timing.benchmark_methods``) on paper-handover and rsu-cpu,
               routed gamma'=0.4 against mha, fp32 and bf16 (``mmtok_bench.py``).
``streaming``  the node's per-frame work (one new frame tokenized + the transformer on cached
               tokens, batch 1): the eager ``StreamingPredictor`` as is and with K fixed once,
               CUDA graphs (``cuda_graphs.py``) and ``torch.compile``, each guarded, and the
               device-to-host syncs of one window (``streaming.py``).
``onnx``       the exported graphs (``model.export``) under onnxruntime's CUDA execution
               provider where this onnxruntime has it, said plainly where not
               (``onnx_runtime.py``).
``capture``    CUDA-graph capture of the routed model as it is, in a child process: a failed
               capture can poison the CUDA context, so it never runs in this one
               (``capture.py``).

``runner.py`` holds the budgets, the progress lines and the JSON/Markdown writing; ``cli.py``
the options and ``main``; ``ros_guard.py`` what ``--forbid-ros`` blocks. Held-out windows:
``bench/heldout`` (a small committed file). Nothing here imports ROS.
"""
from .cli import RUNNERS, main, parse_args
from .runner import BUDGET_S, PARTS, Check

__all__ = ['BUDGET_S', 'PARTS', 'RUNNERS', 'Check', 'main', 'parse_args']
