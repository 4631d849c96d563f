/* The lab guest's UDP echo (deploy/lab/guest): every datagram goes back to its sender unchanged.
 * Busybox has no UDP echo; this is the service deploy/lab/apps/probe.mjs measures against.
 * One socket on [::]:PORT (IPv4 too, through IPv4-mapped addresses) where the kernel has IPv6,
 * else 0.0.0.0:PORT. Built static at set-up by build.sh. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
    fprintf(stderr, "usage: udp-echo PORT\n");
    return 2;
  }
  int port = atoi(argv[1]);
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  if (fd >= 0) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    a6.sin6_addr = in6addr_any;
    if (bind(fd, (struct sockaddr *)&a6, sizeof a6) != 0) {
      perror("udp-echo: bind [::]");
      return 1;
    }
  } else {
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    a4.sin_port = htons(port);
    a4.sin_addr.s_addr = htonl(INADDR_ANY);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a4, sizeof a4) != 0) {
      perror("udp-echo: bind 0.0.0.0");
      return 1;
    }
  }
  printf("udp-echo: listening on %d\n", port);
  fflush(stdout);
  unsigned char buf[65536];
  for (;;) {
    struct sockaddr_storage from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n < 0) continue;
    sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
  }
}
