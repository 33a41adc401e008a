"""Writes the dataset golden fixtures the data crate's tests read.

- data/mini.{csv,jsonl,arrow,parquet}: the same rows in every format (pyarrow and Python's csv/json
  modules write them), with tabs, leading spaces, CRLF inside a quoted field and non-ASCII text.
- paper_csvs.json: what Python's csv module reads from the paper's CSVs in ../shared (row counts,
  label counts, and a sha256 over every text joined with U+001F), when that folder is present.

Run: python3 tests/golden/datasets.py   (needs pyarrow)
"""
import csv
import hashlib
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
SHARED = os.path.join(HERE, "..", "..", "..", "shared", "datasets", "tracingllm")

ROWS = [
    ("Q: Is the sky blue?\tA: Yes.", 1, "weather"),
    ("  leading spaces and trailing  ", 0, "space"),
    ("a quoted, \"comma\" field\r\nwith a CRLF inside", 1, "quote"),
    ("non-ASCII: naïve café — 東京 🙂", 0, "unicode"),
    ("_x000D_ literal stays", 1, "literal"),
]


def texts_digest(texts):
    return hashlib.sha256("\x1f".join(texts).encode("utf-8")).hexdigest()


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "mini.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(["statement", "label", "topic"])
        for r in ROWS:
            w.writerow(r)
    with open(os.path.join(OUT, "mini.jsonl"), "w", encoding="utf-8") as f:
        for t, l, topic in ROWS:
            f.write(json.dumps({"text": t, "label": l, "topic": topic}, ensure_ascii=False) + "\n")
    table = pa.table(
        {
            "sentence": [r[0] for r in ROWS],
            "label": pa.array([r[1] for r in ROWS], pa.int64()),
            "idx": pa.array(list(range(len(ROWS))), pa.int32()),
            "answers": [[r[2], r[2].upper()] for r in ROWS],
        }
    )
    with pa.ipc.new_stream(os.path.join(OUT, "mini.arrow"), table.schema) as w:
        w.write_table(table, max_chunksize=2)  # several record batches
    pq.write_table(table, os.path.join(OUT, "mini.parquet"), compression="snappy", row_group_size=3)

    expect = {"mini": {"texts_sha256": texts_digest([r[0] for r in ROWS]), "labels": [r[1] for r in ROWS]}}
    if os.path.isdir(SHARED):
        for name in sorted(os.listdir(SHARED)):
            if not name.endswith(".csv"):
                continue
            with open(os.path.join(SHARED, name), newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            header, body = rows[0], rows[1:]
            entry = {"rows": len(body), "header": header, "texts_sha256": texts_digest([r[0] for r in body])}
            if len(header) > 1:
                entry["label0"] = sum(r[1] == "0" for r in body)
                entry["label1"] = sum(r[1] == "1" for r in body)
            entry["edge_space_rows"] = sum(r[0] != r[0].strip() for r in body)
            entry["tab_rows"] = sum("\t" in r[0] for r in body)
            expect[name[:-4]] = entry
    else:
        print("../shared/datasets/tracingllm is absent: paper CSV digests not written", file=sys.stderr)
    with open(os.path.join(HERE, "datasets.json"), "w") as f:
        json.dump(expect, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
