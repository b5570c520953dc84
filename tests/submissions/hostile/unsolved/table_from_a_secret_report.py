"""OPEN (not a test): the table-of-answers attack on a class that grades with a case secret.

With $NINJA_CASE_SECRET (or the course's secret file), every grading draws the same fresh cases
and probe seed, and every report names them (`cases`, `draw`, and the labels in messages). So a
student grades anything once, runs this at home on that report, and submits the table it writes:
26/26 at every later grading under the same secret, no gradient math (0/26 on fresh draws).

    python tests/submissions/hostile/unsolved/table_from_a_secret_report.py REPORT.json table.py
"""
import json, sys, torch
from grader.courseware.course import load_course, CaseSpec
from grader.courseware.data import find_names
from grader.courseware.cases import setting_of, build_case
from grader.judging.vjp import unit_randoms, vjp_plan

report = json.load(open(sys.argv[1]))
course = load_course()
ex = course.exercise(report["exercise"])
setting = setting_of(ex, find_names())
chunks, index = [], {}
def put(t):
    t = t.detach().to(torch.float32).contiguous()
    start = sum(c.numel() for c in chunks)
    chunks.append(t.reshape(-1))
    return [start, list(t.shape)]
cases = {}
for i, raw in enumerate(report["cases"]):
    spec = CaseSpec(raw["name"], raw["seed"], raw["batch_size"], raw.get("dtype", "float32"), bool(raw.get("fresh")))
    case = build_case(spec, setting)
    key = f"{case.given['n']}:{float(case.given['logits'].sum()):.6e}"
    entry = {"truth": {g.name: put(case.truth[g.tensor]) for g in ex.gradients}, "vjp": {}, "consumers": {}}
    if i == 0:
        randoms = unit_randoms(ex, case, report["draw"]["probe_seed"])
        for g in ex.gradients:
            plan = vjp_plan(ex, g, case, randoms)
            if plan is not None:
                entry["vjp"][g.name] = put(sum(plan.parts.values(), torch.zeros_like(case.truth[g.tensor])))
                entry["consumers"][g.name] = ["d" + c for c in plan.parts]
    cases[key] = entry
blob = torch.cat(chunks).numpy().tobytes().hex()
order = [g.name for g in ex.gradients]
consumers = next(iter(cases.values()))["consumers"]
lines = [
    "# A table of answers for the cases a report graded under the class's secret named: they are the",
    "# same at every grading, so the next grading judges on exactly these. No gradient math.",
    f"BLOB = torch.frombuffer(bytearray(bytes.fromhex('{blob}')), dtype=torch.float32)",
    f"CASES = {json.dumps(cases)}",
    "KEY = f'{n}:{float(logits.sum()):.6e}'",
    "def part(where):",
    "    start, shape = where",
    "    count = 1",
    "    for s in shape:",
    "        count *= s",
    "    return BLOB[start:start + count].reshape(shape).clone()",
    "def answer(name, *upstream):",
    "    entry = CASES[KEY]",
    "    names = entry['consumers'].get(name, [])",
    "    if upstream and name in entry['vjp'] and not all(torch.equal(u, part(entry['truth'][c])) for u, c in zip(upstream, names)):",
    "        return part(entry['vjp'][name])",
    "    return part(entry['truth'][name])",
]
for name in order:
    ups = consumers.get(name, [])
    lines.append(f"{name} = answer({name!r}{''.join(', ' + u for u in ups)})")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print(len(blob) // 2, "bytes of table; consumers", consumers.get("dlogits"))
