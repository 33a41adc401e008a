"""Reads and writes a Hugging Face cache with huggingface_hub itself, for tests/python.rs.

    python3 hf_cache.py read  CACHE REPO FILE REV [REV ...]   # JSON: scan_cache_dir() and local_files_only loads
    python3 hf_cache.py write CACHE REPO FILE REV [REV ...]   # hf_hub_download from HF_ENDPOINT
"""
import json
import sys

import huggingface_hub
from huggingface_hub import hf_hub_download, scan_cache_dir

mode, cache, repo, file, *revs = sys.argv[1:]
if mode == "read":
    info = scan_cache_dir(cache)
    out = {
        "version": huggingface_hub.__version__,
        "warnings": [str(w) for w in info.warnings],
        "repos": [
            {
                "repo_id": r.repo_id,
                "revisions": sorted(
                    [
                        {
                            "commit": v.commit_hash,
                            "refs": sorted(v.refs),
                            "files": sorted(f.file_name for f in v.files),
                        }
                        for v in r.revisions
                    ],
                    key=lambda v: v["commit"],
                ),
            }
            for r in info.repos
        ],
        "loaded": {
            rev: open(hf_hub_download(repo, file, revision=rev, cache_dir=cache, local_files_only=True), "rb").read().hex()
            for rev in revs
        },
    }
    print(json.dumps(out))
elif mode == "write":
    for rev in revs:
        for f in file.split(","):
            hf_hub_download(repo, f, revision=rev, cache_dir=cache)
    print("ok")
