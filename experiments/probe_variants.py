"""One seed of ``probe`` (or another searcher) on Fashion-MNIST with given hyperparameters: a quick screen.

Prints one JSON line per seed with training loss and accuracy, validation accuracy (test
accuracy is recorded but was not used to choose), the steps, and the searcher's counts of
proposals, checks and flips per layer, and appends it to ``--log``. Issue 29's exploration
(``experiments/results/probe_confirm/exploration.jsonl``) ran it as, e.g.::

    python experiments/probe_variants.py --budget 20000evals --seeds 10 --tag nc_lr01 \
        -p confirm=false -p max_checks=1000000 -p lr=0.1
"""

import argparse
import json
import time

from prunetrain.backends import make_backend
from prunetrain.data import load_dataset
from prunetrain.masks import KeepRule
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.problem import Problem
from prunetrain.runs import evaluate_ticket
from prunetrain.search import make_searcher, run
from prunetrain.ticket import Ticket

p = argparse.ArgumentParser()
p.add_argument("--arch", default="784-300-100-10")
p.add_argument("--budget", default="40000evals")
p.add_argument("--seeds", type=int, nargs="+", default=[10])
p.add_argument("--batch", type=int, default=256)
p.add_argument("--method", default="probe")
p.add_argument("--tag", default="")
p.add_argument("-p", action="append", default=[], help="NAME=JSON_VALUE")
p.add_argument("--log", default="probe_variants.jsonl")
a = p.parse_args()
params = {}
for kv in a.p:
    k, _, v = kv.partition("=")
    params[k] = json.loads(v)
data = load_dataset("fashion-mnist")
sizes = [int(s) for s in a.arch.split("-")]
for seed in a.seeds:
    net = FrozenNetwork(NetworkSpec(sizes, keep=0.5), seed)
    rule = KeepRule(0.5)
    problem = Problem(
        net, data, rule, backend=make_backend("numba", net), batch_size=a.batch, seed=seed
    )
    s = make_searcher(a.method, **params)
    t = time.time()
    res = run(problem, s, a.budget, seed=seed)
    el = time.time() - t
    f = evaluate_ticket(Ticket(net, res.mask, rule), data)
    last = evaluate_ticket(Ticket(net, s.mask, rule), data) if hasattr(s, "mask") else f
    row = dict(
        tag=a.tag,
        params=params,
        batch=a.batch,
        seed=seed,
        budget=a.budget,
        steps=getattr(s, "steps", None),
        secs=round(el, 1),
        evals=round(res.evaluations),
        train_loss=round(f["train"]["loss"], 4),
        train_acc=round(f["train"]["accuracy"], 4),
        val_acc=round(f["val"]["accuracy"], 4),
        test_acc=round(f["test"]["accuracy"], 4),
        last_train_loss=round(last["train"]["loss"], 4),
        last_val=round(last["val"]["accuracy"], 4),
        proposed=getattr(s, "n_proposed", None),
        checked=getattr(s, "n_checked", None),
        flipped=getattr(s, "n_flipped", None),
    )
    print(json.dumps(row), flush=True)
    with open(a.log, "a") as fh:
        fh.write(json.dumps(row) + "\n")
