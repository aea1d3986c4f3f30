/* Test-only stand-in for the kernel's IPVS sockopt interface (IPv4 only),
 * preloaded so that the real ipvsadm prints listings of a made-up table and
 * shows how it parses command lines (regenerate.sh). State file: $FAKE_IPVS.
 *   svc tcp|udp ADDR PORT SCHED FLAGS TIMEOUT NETMASK(dotted) conns inpkts outpkts inbytes outbytes cps inpps outpps inbps outbps
 *   dest ADDR PORT FWD(0 masq,2 tunnel,3 route) WEIGHT UTHR LTHR ACTIVE INACT PERSIST conns inpkts outpkts inbytes outbytes cps inpps outpps inbps outbps
 *   timeout TCP FIN UDP
 *   seterr ERRNO   (every setsockopt fails with ERRNO)
 * The connection listing reads $FAKE_IPVS_CONN in place of
 * /proc/net/ip_vs_conn (the kernel's text: a title line, then a line per
 * connection).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/ip_vs.h>

static struct ip_vs_service_entry svcs[16];
static struct ip_vs_dest_entry dests[16][16];
static int nsvc, seterr;
static struct ip_vs_timeout_user tmo = {900, 120, 300};
static int fake_fd = -1;

static void stats(struct ip_vs_stats_user *s, char **tok) {
	unsigned long long v[10]; for (int i = 0; i < 10; i++) v[i] = tok[i] ? strtoull(tok[i], 0, 10) : 0;
	s->conns = v[0]; s->inpkts = v[1]; s->outpkts = v[2]; s->inbytes = v[3]; s->outbytes = v[4];
	s->cps = v[5]; s->inpps = v[6]; s->outpps = v[7]; s->inbps = v[8]; s->outbps = v[9];
}

static void load(void) {
	static int loaded; if (loaded) return; loaded = 1;
	const char *path = getenv("FAKE_IPVS"); if (!path) return;
	FILE *f = fopen(path, "r"); if (!f) return;
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		char *tok[40] = {0}; int n = 0;
		for (char *t = strtok(line, " \t\n"); t && n < 39; t = strtok(NULL, " \t\n")) tok[n++] = t;
		if (n == 0) continue;
		if (!strcmp(tok[0], "svc")) {
			struct ip_vs_service_entry *s = &svcs[nsvc++];
			s->protocol = !strcmp(tok[1], "udp") ? IPPROTO_UDP : IPPROTO_TCP;
			inet_pton(AF_INET, tok[2], &s->addr); s->port = htons(atoi(tok[3]));
			strncpy(s->sched_name, tok[4], IP_VS_SCHEDNAME_MAXLEN - 1);
			s->flags = strtoul(tok[5], 0, 0); s->timeout = atoi(tok[6]);
			inet_pton(AF_INET, tok[7], &s->netmask);
			stats(&s->stats, tok + 8);
		} else if (!strcmp(tok[0], "dest")) {
			struct ip_vs_service_entry *s = &svcs[nsvc - 1];
			struct ip_vs_dest_entry *d = &dests[nsvc - 1][s->num_dests++];
			inet_pton(AF_INET, tok[1], &d->addr); d->port = htons(atoi(tok[2]));
			d->conn_flags = atoi(tok[3]); d->weight = atoi(tok[4]);
			d->u_threshold = atoi(tok[5]); d->l_threshold = atoi(tok[6]);
			d->activeconns = atoi(tok[7]); d->inactconns = atoi(tok[8]); d->persistconns = atoi(tok[9]);
			stats(&d->stats, tok + 10);
		} else if (!strcmp(tok[0], "timeout")) {
			tmo.tcp_timeout = atoi(tok[1]); tmo.tcp_fin_timeout = atoi(tok[2]); tmo.udp_timeout = atoi(tok[3]);
		} else if (!strcmp(tok[0], "seterr")) {
			seterr = atoi(tok[1]);
		}
	}
	fclose(f);
}

int socket(int domain, int type, int protocol) {
	static int (*real)(int, int, int);
	if (!real) real = dlsym(RTLD_NEXT, "socket");
	if (domain == AF_INET && type == SOCK_RAW && protocol == IPPROTO_RAW) {
		fake_fd = open("/dev/null", O_RDONLY);
		return fake_fd;
	}
	return real(domain, type, protocol);
}

int getsockopt(int fd, int level, int opt, void *val, socklen_t *len) {
	static int (*real)(int, int, int, void *, socklen_t *);
	if (!real) real = dlsym(RTLD_NEXT, "getsockopt");
	if (fd != fake_fd || level != IPPROTO_IP) return real(fd, level, opt, val, len);
	load();
	switch (opt) {
	case IP_VS_SO_GET_INFO: {
		struct ip_vs_getinfo *i = val; i->version = 0x010201; i->size = 4096; i->num_services = nsvc; return 0; }
	case IP_VS_SO_GET_SERVICES: {
		struct ip_vs_get_services *g = val; g->num_services = nsvc;
		memcpy(g->entrytable, svcs, sizeof(svcs[0]) * nsvc); return 0; }
	case IP_VS_SO_GET_SERVICE: {
		struct ip_vs_service_entry *q = val;
		for (int i = 0; i < nsvc; i++)
			if (svcs[i].protocol == q->protocol && svcs[i].addr == q->addr && svcs[i].port == q->port) {
				*q = svcs[i]; return 0; }
		errno = ESRCH; return -1; }
	case IP_VS_SO_GET_DESTS: {
		struct ip_vs_get_dests *g = val;
		for (int i = 0; i < nsvc; i++)
			if (svcs[i].protocol == g->protocol && svcs[i].addr == g->addr && svcs[i].port == g->port) {
				g->num_dests = svcs[i].num_dests;
				memcpy(g->entrytable, dests[i], sizeof(dests[i][0]) * g->num_dests); return 0; }
		errno = ESRCH; return -1; }
	case IP_VS_SO_GET_TIMEOUT:
		memcpy(val, &tmo, sizeof tmo); return 0;
	}
	errno = ENOPROTOOPT; return -1;
}

int setsockopt(int fd, int level, int opt, const void *val, socklen_t len) {
	static int (*real)(int, int, int, const void *, socklen_t);
	if (!real) real = dlsym(RTLD_NEXT, "setsockopt");
	if (fd != fake_fd || level != IPPROTO_IP) return real(fd, level, opt, val, len);
	load();
	if (seterr) { errno = seterr; return -1; }
	fprintf(stderr, "[fake setsockopt %d len %u]\n", opt - IP_VS_BASE_CTL, len);
	return 0;
}

FILE *fopen(const char *path, const char *mode) {
	static FILE *(*real)(const char *, const char *);
	if (!real) real = dlsym(RTLD_NEXT, "fopen");
	const char *conns = getenv("FAKE_IPVS_CONN");
	if (conns && !strcmp(path, "/proc/net/ip_vs_conn")) return real(conns, mode);
	return real(path, mode);
}
