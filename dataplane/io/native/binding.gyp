{
  "targets": [{
    "target_name": "mip46ring",
    "sources": ["ring.c"],
    "cflags": ["-O2", "-Wall"]
  }]
}
