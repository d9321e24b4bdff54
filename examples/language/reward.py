import json, sys
for line in sys.stdin:
    row = json.loads(line)
    print(json.dumps({"reward": 1.0 if "7" in row.get("completion", "") else 0.0}))
