#!/usr/bin/env python3
"""Import graph of src/ (grep-based): files as nodes, `crate::a::b` and `super::x` references
as edges; prints strongly connected components larger than one file, and the number of string
comparisons of status/kind/channel/message_type/role values."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else "src"
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith(".rs"):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)[:-3]
            parts = rel.split(os.sep)
            if parts[-1] == "mod": parts = parts[:-1]
            if parts in (["lib"], ["main"]): continue
            src = open(p).read()
            src = "\n".join(l for l in src.split("\n") if not l.strip().startswith("//"))
            files[tuple(parts)] = src
def resolve(path):
    path = list(path)
    while path:
        if tuple(path) in files: return tuple(path)
        path.pop()
    return None
edges = {m: set() for m in files}
for m, text in files.items():
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
    for match in re.finditer(r"crate::((?:\w+::)*\w+)", text):
        t = resolve(match.group(1).split("::"))
        if t and t != m: edges[m].add(t)
    for match in re.finditer(r"\bsuper::((?:\w+::)*\w+)", text):
        t = resolve(list(m[:-1]) + match.group(1).split("::"))
        if t and t != m: edges[m].add(t)
    for match in re.finditer(r"^\s*use\s+crate::\{([^;]*)\};", text, flags=re.M):
        for item in re.split(r",\s*(?![^{]*\})", match.group(1)):
            head = item.strip().split("::")
            t = resolve([h.strip("{} ") for h in head if h.strip("{} ")])
            if t and t != m: edges[m].add(t)
# Tarjan
index, low, stack, on, sccs, i = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def strong(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index: strong(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        sccs.append(c)
for v in edges:
    if v not in index: strong(v)
big = [c for c in sccs if len(c) > 1]
print(f"files: {len(files)}, circles: {len(big)}, files in circles: {sum(map(len, big))}")
for c in big:
    print("  circle of", len(c), ":", " ".join("/".join(x) for x in sorted(c)))
up = [("/".join(m), "/".join(t)) for m, ts in edges.items() for t in ts if t[0] == "http" and m[0] not in ("http", "startup")]
print(f"imports of http/ from below it: {len(up)}", up)
cmp = 0
for m, text in files.items():
    if m[0] == "bench": continue
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", text, flags=re.S)
    cmp += len(re.findall(r"\b(?:kind|status|channel|message_type|role)(?:\(\))?(?:\.as_str\(\))?\s*[!=]=\s*\"", text))
    cmp += len(re.findall(r"matches!\(\s*[\w.]*(?:kind|status|channel|message_type|role)[\w.()]*\s*,\s*\"", text))
print("string comparisons of status/kind/channel/message_type/role:", cmp)
if "-v" in sys.argv:
    for m in sorted(edges):
        print("/".join(m), "->", " ".join(sorted("/".join(t) for t in edges[m])))
if "--check" in sys.argv and (big or up):
    sys.exit("layering: the import graph has a circle or a module below http/ imports it")
