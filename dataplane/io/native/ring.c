/*
 * mip46ring: a PACKET_MMAP capture ring and batched injection for the data-plane worker
 * (dataplane/io/ring.ts). Linux only. Our own code; see packet(7) and
 * Documentation/networking/packet_mmap.rst for the kernel interface.
 *
 * Capture: TPACKET_V2 ring with frames sized to the interface MTU. TPACKET_V3 was tried on paper
 * and left out: its kernel side calls sk_data_ready only when a block is retired (full, or its
 * timer of at least one jiffy expired), so a lone packet waits milliseconds; V2 marks every frame
 * ready on its own and wakes poll at once, and a wake-up still drains every ready frame (a batch).
 * Our own frames are left out in the kernel (PACKET_IGNORE_OUTGOING, Linux 4.20).
 * One JS call per wake-up: the frames stay in the ring (views, no copy) and are given back to
 * the kernel when the handler returns.
 * Injection: sendmmsg(2) of a whole batch on the same socket; EAGAIN / ENOBUFS are counted and
 * the rest of the batch is tried once more, never spun on.
 * Scheduling (forwardingScheduling): the process's helper threads (V8's compiler and GC workers)
 * are made SCHED_BATCH, so that a helper woken by the forwarding thread never preempts it
 * (sched(7); bench/README.md, "Issue 12, latency").
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_SEND 1024

typedef struct {
  int fd;
  int ifindex;
  uint8_t *ring;
  size_t ring_bytes;
  uint32_t frame_size, frame_nr, head, snap;
  uv_poll_t poll;
  int polling;
  napi_env env;
  napi_ref callback;   /* (count) => void, reads desc */
  napi_ref desc_ref;   /* Int32Array: offset, length per frame */
  int32_t *desc;
  uint32_t max_batch;
  double truncated, send_retries, send_errors, drops, socket_errors;
  struct mmsghdr msgs[MAX_SEND];
  struct iovec iov[MAX_SEND];
  struct sockaddr_ll dest;
} Ring;

static napi_value throw_errno(napi_env env, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static Ring *get_ring(napi_env env, napi_value v) {
  Ring *r = NULL;
  if (napi_get_value_external(env, v, (void **)&r) != napi_ok || !r) {
    napi_throw_type_error(env, NULL, "not a ring handle");
    return NULL;
  }
  return r;
}

/* The ring of a call whose one argument is the handle (stats, close). */
static Ring *handle_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return get_ring(env, argv[0]); /* a missing argument is undefined: a TypeError */
}

static void stop_ring(Ring *r);

/* A worker thread that ends (or dies) tears its env down: its rings must go with it, or their
 * sockets would stay in the fanout group and take their share of the flows into a ring nobody
 * reads. */
static void env_cleanup(void *arg) {
  stop_ring((Ring *)arg);
}

static void release_ring(Ring *r) {
  if (r->ring) munmap(r->ring, r->ring_bytes);
  r->ring = NULL;
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
}


/* Hands every ready frame to JS in one call, then gives the frames back to the kernel. */
static void drain(Ring *r) {
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  for (int rounds = 0; rounds < 4 && r->fd >= 0; rounds++) {
    /* At most one turn of the ring: the frames of this batch stay ours (TP_STATUS_USER) until
     * the handler returns, so walking on past frame_nr would hand the same frames over twice. */
    uint32_t n = 0, first = r->head, idx = r->head;
    uint32_t limit = r->max_batch < r->frame_nr ? r->max_batch : r->frame_nr;
    while (n < limit) {
      struct tpacket2_hdr *h = (struct tpacket2_hdr *)(r->ring + (size_t)idx * r->frame_size);
      if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
      if (h->tp_snaplen < h->tp_len) {
        r->truncated++;             /* longer than the ring frame: counted and dropped */
        r->desc[2 * n] = -1;
        r->desc[2 * n + 1] = 0;
      } else {
        r->desc[2 * n] = (int32_t)((size_t)idx * r->frame_size + h->tp_mac);
        r->desc[2 * n + 1] = (int32_t)h->tp_snaplen;
      }
      n++;
      idx = (idx + 1) % r->frame_nr;
    }
    if (n == 0) break;
    napi_value cb, global, arg, result;
    napi_get_reference_value(env, r->callback, &cb);
    napi_get_global(env, &global);
    napi_create_uint32(env, n, &arg);
    napi_status st = napi_call_function(env, global, cb, 1, &arg, &result);
    if (st == napi_pending_exception) {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
    }
    if (!r->ring) break; /* closed by the handler */
    idx = first;
    for (uint32_t i = 0; i < n; i++) {
      struct tpacket2_hdr *h = (struct tpacket2_hdr *)(r->ring + (size_t)idx * r->frame_size);
      __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      idx = (idx + 1) % r->frame_nr;
    }
    r->head = idx;
    if (n < limit) break;
  }
  napi_close_handle_scope(env, scope);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  (void)events;
  Ring *r = (Ring *)p->data;
  if (status < 0 && r->fd >= 0) {
    /* POLLERR: the socket holds an error, ENETDOWN when the link went down. libuv has stopped
     * the handle; read the error (SO_ERROR clears it), count it and poll again. The socket stays
     * bound to its interface and takes frames again when the link comes back up (packet(7)). */
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    r->socket_errors++;
    uv_poll_start(&r->poll, UV_READABLE, on_poll);
  }
  drain(r);
}

/* open(ifname, frameSize, frameCount, maxBatch, callback, fanout) -> [handle, ring ArrayBuffer, desc Int32Array]
 * fanout true: the socket joins the interface's PACKET_FANOUT group (one per interface, its id the
 * ifindex) in hash mode, so each flow goes to one member and is never reordered (packet(7)).
 * No PACKET_FANOUT_FLAG_DEFRAG: it reassembles IPv4 fragments before the socket sees them, and the
 * worker must forward the fragments, not a datagram longer than a ring frame. Fragments stay
 * together without it: the kernel's flow hash reads no ports of a fragment (the flow dissector
 * stops at the IP header of any fragment), so every fragment of a datagram hashes alike. */
static napi_value ring_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char name[IF_NAMESIZE + 1];
  size_t len;
  uint32_t frame_size, frame_nr, max_batch;
  bool fanout = false;
  if (argc < 5 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &frame_size) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &frame_nr) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &max_batch) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(ifname, frameSize, frameCount, maxBatch, callback, fanout)");
    return NULL;
  }
  if (argc >= 6) napi_get_value_bool(env, argv[5], &fanout);
  /* Blocks are a page, or the smallest power-of-two number of pages that holds one frame. */
  long page = sysconf(_SC_PAGESIZE);
  while (page < (long)frame_size && page < (1L << 20)) page *= 2;
  if (frame_size < 128 || frame_size % TPACKET_ALIGNMENT || page % frame_size || frame_nr < 2 || max_batch < 1) {
    napi_throw_range_error(env, NULL, "frameSize must be a power of two of at least 128 bytes and at most 1 MiB, frameCount >= 2");
    return NULL;
  }
  Ring *r = calloc(1, sizeof *r);
  r->fd = -1;
  r->env = env;
  r->frame_size = frame_size;
  r->max_batch = max_batch > MAX_SEND ? MAX_SEND : max_batch;
  r->ifindex = (int)if_nametoindex(name);
  if (r->ifindex == 0) { free(r); return throw_errno(env, name); }
  /* Protocol 0: the socket receives nothing until bind() names the interface and ETH_P_ALL
   * (packet(7)). Opened with ETH_P_ALL, it would capture every interface's frames into the ring
   * before bind, moving the kernel's ring head past where we start reading. */
  r->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->fd < 0) { free(r); return throw_errno(env, "socket(AF_PACKET)"); }
  int v2 = TPACKET_V2, one = 1;
  if (setsockopt(r->fd, SOL_PACKET, PACKET_VERSION, &v2, sizeof v2) < 0) goto fail_v;
  if (setsockopt(r->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) goto fail_i;
  /* The ring is frame_nr frames rounded up to whole blocks. */
  struct tpacket_req req;
  req.tp_block_size = (unsigned)page;
  req.tp_frame_size = frame_size;
  uint32_t per_block = (uint32_t)page / frame_size;
  req.tp_block_nr = (frame_nr + per_block - 1) / per_block;
  req.tp_frame_nr = req.tp_block_nr * per_block;
  if (setsockopt(r->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) goto fail_r;
  r->frame_nr = req.tp_frame_nr;
  r->ring_bytes = (size_t)req.tp_block_nr * req.tp_block_size;
  r->ring = mmap(NULL, r->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
  if (r->ring == MAP_FAILED) { r->ring = NULL; goto fail_m; }
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = r->ifindex;
  if (bind(r->fd, (struct sockaddr *)&sll, sizeof sll) < 0) goto fail_b;
  if (fanout) {
    int arg = (r->ifindex & 0xffff) | (PACKET_FANOUT_HASH << 16);
    if (setsockopt(r->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) < 0) goto fail_f;
  }
  r->dest = sll;
  r->dest.sll_halen = ETH_ALEN;
  /* No frame can be in the ring before bind (protocol 0 above), and the kernel and we both
   * start at frame 0. Never hand frames back here: the kernel's head would stay where it is while
   * ours went back to 0, and every frame after would wait a whole turn of the ring. */

  napi_value result, handle, ab, desc, dab;
  napi_create_external(env, r, NULL, NULL, &handle);
  if (napi_create_external_arraybuffer(env, r->ring, r->ring_bytes, NULL, NULL, &ab) != napi_ok) {
    napi_throw_error(env, NULL, "external array buffers are not allowed here");
    release_ring(r); free(r);
    return NULL;
  }
  void *dp;
  napi_create_arraybuffer(env, (size_t)r->max_batch * 8, &dp, &dab);
  r->desc = dp;
  napi_create_typedarray(env, napi_int32_array, (size_t)r->max_batch * 2, dab, 0, &desc);
  napi_create_reference(env, desc, 1, &r->desc_ref);
  napi_create_reference(env, argv[4], 1, &r->callback);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &r->poll, r->fd);
  r->poll.data = r;
  uv_poll_start(&r->poll, UV_READABLE, on_poll);
  r->polling = 1;
  napi_add_env_cleanup_hook(env, env_cleanup, r);
  napi_create_array_with_length(env, 3, &result);
  napi_set_element(env, result, 0, handle);
  napi_set_element(env, result, 1, ab);
  napi_set_element(env, result, 2, desc);
  return result;
fail_v: { int e = errno; close(r->fd); free(r); errno = e; return throw_errno(env, "PACKET_VERSION TPACKET_V2"); }
fail_i: { int e = errno; close(r->fd); free(r); errno = e; return throw_errno(env, "PACKET_IGNORE_OUTGOING"); }
fail_r: { int e = errno; close(r->fd); free(r); errno = e; return throw_errno(env, "PACKET_RX_RING"); }
fail_m: { int e = errno; close(r->fd); free(r); errno = e; return throw_errno(env, "mmap"); }
fail_b: { int e = errno; release_ring(r); free(r); errno = e; return throw_errno(env, "bind"); }
fail_f: { int e = errno; release_ring(r); free(r); errno = e; return throw_errno(env, "PACKET_FANOUT"); }
}

/* send(handle, buffer, offsets Int32Array, lengths Int32Array, count) -> frames sent.
 * Errors are counted in the handle (stats). */
static napi_value ring_send(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  Ring *r = get_ring(env, argv[0]);
  if (!r) return NULL;
  void *buf; size_t buflen;
  napi_typedarray_type t; size_t olen, llen; void *od, *ld; napi_value ab; size_t off;
  uint32_t count;
  if (napi_get_buffer_info(env, argv[1], &buf, &buflen) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &t, &olen, &od, &ab, &off) != napi_ok || t != napi_int32_array ||
      napi_get_typedarray_info(env, argv[3], &t, &llen, &ld, &ab, &off) != napi_ok || t != napi_int32_array ||
      napi_get_value_uint32(env, argv[4], &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "send(handle, buffer, offsets, lengths, count)");
    return NULL;
  }
  if (count > olen || count > llen || count > MAX_SEND) count = olen < llen ? (uint32_t)olen : (uint32_t)llen;
  if (count > MAX_SEND) count = MAX_SEND;
  const int32_t *offs = od, *lens = ld;
  uint32_t n = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (offs[i] < 0 || lens[i] < ETH_HLEN || (size_t)offs[i] + (size_t)lens[i] > buflen) { r->send_errors++; continue; }
    r->iov[n].iov_base = (uint8_t *)buf + offs[i];
    r->iov[n].iov_len = (size_t)lens[i];
    memset(&r->msgs[n], 0, sizeof r->msgs[n]);
    r->msgs[n].msg_hdr.msg_iov = &r->iov[n];
    r->msgs[n].msg_hdr.msg_iovlen = 1;
    n++;
  }
  uint32_t done = 0, refused = 0;
  int retried = 0;
  while (done < n && r->fd >= 0) {
    int k = sendmmsg(r->fd, r->msgs + done, n - done, MSG_DONTWAIT);
    if (k > 0) { done += (uint32_t)k; continue; }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == ENOBUFS) && !retried) {
      /* The socket's buffer or the device queue is full: once per batch, wait for room (at most
       * 1 ms), then try the rest again; a second time the rest is dropped, never spun on. */
      retried = 1;
      r->send_retries++;
      struct pollfd pfd = { .fd = r->fd, .events = POLLOUT };
      poll(&pfd, 1, 1);
      continue;
    }
    if (k < 0 && errno != EAGAIN && errno != ENOBUFS) {
      /* A frame the kernel refuses (too long for the MTU): skip it, keep the rest. */
      refused++;
      done++;
      continue;
    }
    break;
  }
  /* Frames sent: those the kernel took; the refused ones and those never tried are errors. */
  uint32_t sent_ok = done - refused;
  r->send_errors += refused + (n - done);
  napi_value v;
  napi_create_uint32(env, sent_ok, &v);
  return v;
}

/* stats(handle) -> [captureDrops, truncated, sendRetries, sendErrors, socketErrors] */
static napi_value ring_stats(napi_env env, napi_callback_info info) {
  Ring *r = handle_arg(env, info);
  if (!r) return NULL;
  if (r->fd >= 0) {
    struct tpacket_stats st;
    socklen_t sl = sizeof st;
    if (getsockopt(r->fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0) r->drops += st.tp_drops;
  }
  napi_value out, v;
  napi_create_array_with_length(env, 5, &out);
  double vals[5] = { r->drops, r->truncated, r->send_retries, r->send_errors, r->socket_errors };
  for (int i = 0; i < 5; i++) { napi_create_double(env, vals[i], &v); napi_set_element(env, out, (uint32_t)i, v); }
  return out;
}

/* Stops polling and closes the socket; the handle struct stays (the external may still be
 * referenced). */
static void stop_ring(Ring *r) {
  if (r->fd < 0) return;
  if (r->polling) uv_poll_stop(&r->poll);
  r->polling = 0;
  release_ring(r);
  uv_close((uv_handle_t *)&r->poll, NULL);
}

static napi_value ring_close(napi_env env, napi_callback_info info) {
  Ring *r = handle_arg(env, info);
  if (!r || r->fd < 0) return NULL;
  napi_remove_env_cleanup_hook(env, env_cleanup, r);
  napi_delete_reference(env, r->callback);
  napi_delete_reference(env, r->desc_ref);
  stop_ring(r);
  return NULL;
}

/* threadId() -> the calling thread's kernel id (gettid), so that a worker's threads can be found
 * in /proc/PID/task/ for their CPU time. */
static napi_value ring_thread_id(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_int32(env, (int32_t)syscall(SYS_gettid), &v);
  return v;
}

/* forwardingScheduling() -> the number of threads made SCHED_BATCH
 *
 * V8 hands its optimising compiler's jobs (and GC work) to helper threads, and wakes one from the
 * forwarding thread. Woken on the forwarding thread's CPU, a SCHED_OTHER helper preempts it
 * (a sleeper comes back ahead), and with the other CPU idle the forwarding thread then sits
 * runnable until the next load balance, at a scheduler tick (4 ms at HZ=250): a lone frame that
 * arrives then waits that long. A SCHED_BATCH thread keeps its nice value and its share of the
 * CPU, so the helpers still compile and collect as fast, but it never preempts on wake-up
 * (sched(7)). Needs no privilege.
 * Called on the process's main thread, every other thread of the process that exists now (V8's
 * platform workers, Node's and libuv's threads) becomes SCHED_BATCH; threads started later take
 * the policy of their creator. Called on another thread (a forwarding worker thread) it changes
 * nothing and answers 0: it cannot tell a helper from another forwarding thread. */
static napi_value ring_forwarding_scheduling(napi_env env, napi_callback_info info) {
  (void)info;
  pid_t self = (pid_t)syscall(SYS_gettid);
  uint32_t batched = 0;
  if (self == getpid()) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return throw_errno(env, "/proc/self/task");
    struct dirent *e;
    struct sched_param none = { .sched_priority = 0 };
    while ((e = readdir(d))) {
      pid_t tid = (pid_t)atoi(e->d_name);
      if (tid <= 0 || tid == self) continue;
      /* A thread that ended since readdir: ESRCH, skipped. */
      if (sched_setscheduler(tid, SCHED_BATCH, &none) == 0) batched++;
    }
    closedir(d);
  }
  napi_value v;
  napi_create_uint32(env, batched, &v);
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, ring_open, NULL, NULL, NULL, napi_default, NULL },
    { "send", NULL, ring_send, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, ring_stats, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, ring_close, NULL, NULL, NULL, napi_default, NULL },
    { "threadId", NULL, ring_thread_id, NULL, NULL, NULL, napi_default, NULL },
    { "forwardingScheduling", NULL, ring_forwarding_scheduling, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 6, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
