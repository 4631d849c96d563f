/*
 * The raw I/O ceiling for bench/dataplane.ts: the smallest forwarder on the same I/O as the
 * worker's ring backend (dataplane/io/native/ring.c): a TPACKET_V2 receive ring on the input
 * interface, frames handed over per wake-up, and sendmmsg(2) of the whole batch on the output.
 * It does no packet work but rewriting the two MAC addresses, so the worker's rate divided by
 * this one is the share of the I/O ceiling our pipeline reaches.
 *
 *   forward IN OUT DST_MAC     (runs until killed)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define FRAME_SIZE 2048
#define FRAME_NR 8192
#define BATCH 1024

static int bound_socket(const char *name, int *ifindex) {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, 0); /* nothing arrives before bind */
  if (fd < 0) { perror("socket"); exit(1); }
  *ifindex = (int)if_nametoindex(name);
  if (*ifindex == 0) { perror(name); exit(1); }
  return fd;
}

/* Protocol ETH_P_ALL to receive on the interface; 0 for the output socket, which only sends. */
static void bind_to(int fd, int ifindex, int protocol) {
  struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(protocol), .sll_ifindex = ifindex };
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind"); exit(1); }
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: forward IN OUT DST_MAC\n"); return 2; }
  uint8_t dst[6], src[6];
  if (sscanf(argv[3], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &dst[0], &dst[1], &dst[2], &dst[3], &dst[4], &dst[5]) != 6) { fprintf(stderr, "bad MAC\n"); return 2; }
  int in_index, out_index;
  int in = bound_socket(argv[1], &in_index);
  int out = bound_socket(argv[2], &out_index);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[2]);
  if (ioctl(out, SIOCGIFHWADDR, &ifr) < 0) { perror("SIOCGIFHWADDR"); return 1; }
  memcpy(src, ifr.ifr_hwaddr.sa_data, 6);

  int v2 = TPACKET_V2, one = 1;
  if (setsockopt(in, SOL_PACKET, PACKET_VERSION, &v2, sizeof v2) < 0) { perror("PACKET_VERSION"); return 1; }
  setsockopt(in, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  struct tpacket_req req = { .tp_block_size = 4096, .tp_frame_size = FRAME_SIZE, .tp_block_nr = FRAME_NR / 2, .tp_frame_nr = FRAME_NR };
  if (setsockopt(in, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) { perror("PACKET_RX_RING"); return 1; }
  uint8_t *ring = mmap(NULL, (size_t)FRAME_SIZE * FRAME_NR, PROT_READ | PROT_WRITE, MAP_SHARED, in, 0);
  if (ring == MAP_FAILED) { perror("mmap"); return 1; }
  bind_to(in, in_index, ETH_P_ALL);
  bind_to(out, out_index, 0);

  static struct mmsghdr msgs[BATCH];
  static struct iovec iov[BATCH];
  uint32_t head = 0;
  for (;;) {
    struct pollfd p = { .fd = in, .events = POLLIN };
    poll(&p, 1, -1);
    uint32_t n = 0, first = head;
    while (n < BATCH) {
      struct tpacket2_hdr *h = (struct tpacket2_hdr *)(ring + (size_t)head * FRAME_SIZE);
      if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
      uint8_t *frame = (uint8_t *)h + h->tp_mac;
      memcpy(frame, dst, 6);
      memcpy(frame + 6, src, 6);
      iov[n].iov_base = frame;
      iov[n].iov_len = h->tp_snaplen;
      memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_iov = &iov[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      n++;
      head = (head + 1) % FRAME_NR;
    }
    /* Sent straight from the ring, then the frames go back to the kernel. */
    for (uint32_t done = 0; done < n;) {
      int k = sendmmsg(out, msgs + done, n - done, 0);
      if (k <= 0) { if (errno == EINTR) continue; break; }
      done += (uint32_t)k;
    }
    for (uint32_t i = 0, idx = first; i < n; i++, idx = (idx + 1) % FRAME_NR)
      __atomic_store_n(&((struct tpacket2_hdr *)(ring + (size_t)idx * FRAME_SIZE))->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
  }
}
