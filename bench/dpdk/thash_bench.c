/* DPDK rte_thash beside symrss, same method as `symrss bench hash`:
 * 4096 random tuples (SplitMix64, same seeds), single-tuple calls repeated
 * to >= 10M calls, best of 3, ns per call. Prints one JSON object.
 * Built by bench/dpdk/run.sh only when Debian's libdpdk-dev is installed. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <rte_thash.h>

#define TUPLES 4096
static uint64_t sm;
static uint64_t splitmix(void) {
	uint64_t z = (sm += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
static const uint8_t ms_key[40] = {
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
static uint8_t sym_key[40];
static uint8_t v4[TUPLES][12], v6[TUPLES][36];
static struct rte_ipv4_tuple t4[TUPLES];
static struct rte_ipv6_tuple t6[TUPLES];
static uint64_t mtrx_ms[40], mtrx_sym[40];

static double now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile uint32_t sink;
#define REPS (10000000 / TUPLES + 1)
#define BENCH(name, body)                                                   \
	do {                                                                    \
		double best = 1e30;                                                 \
		for (int run = 0; run < 3; run++) {                                 \
			uint32_t acc = 0;                                               \
			double t0 = now_ns();                                           \
			for (int r = 0; r < REPS; r++)                                  \
				for (int i = 0; i < TUPLES; i++) { body; }                  \
			sink = acc;                                                     \
			double ns = (now_ns() - t0) / ((double)REPS * TUPLES);          \
			if (ns < best) best = ns;                                       \
		}                                                                   \
		printf("%s{\"name\": \"%s\", \"ns_per_op\": %.3f}", first ? "" : ",\n    ", name, best); \
		first = 0;                                                          \
	} while (0)

int main(void) {
	for (int i = 0; i < 40; i++) sym_key[i] = (i % 2) ? 0x5a : 0x6d;
	/* Same tuple stream as symrss bench (seed 4 for IPv4, 6 for IPv6). */
	sm = 4;
	for (int i = 0; i < TUPLES; i++) {
		uint16_t sp = (uint16_t)splitmix(), dp = (uint16_t)splitmix();
		uint32_t s = (uint32_t)splitmix(), d = (uint32_t)splitmix();
		t4[i].src_addr = s; t4[i].dst_addr = d; t4[i].sport = sp; t4[i].dport = dp;
		uint8_t *b = v4[i];
		b[0] = s >> 24; b[1] = s >> 16; b[2] = s >> 8; b[3] = s;
		b[4] = d >> 24; b[5] = d >> 16; b[6] = d >> 8; b[7] = d;
		b[8] = sp >> 8; b[9] = sp; b[10] = dp >> 8; b[11] = dp;
	}
	sm = 6;
	for (int i = 0; i < TUPLES; i++) {
		uint16_t sp = (uint16_t)splitmix(), dp = (uint16_t)splitmix();
		uint64_t w[4] = {splitmix(), splitmix(), splitmix(), splitmix()};
		uint8_t *b = v6[i];
		for (int k = 0; k < 4; k++)
			for (int j = 0; j < 8; j++) b[8 * k + j] = w[k] >> (56 - 8 * j);
		b[32] = sp >> 8; b[33] = sp; b[34] = dp >> 8; b[35] = dp;
		memcpy(t6[i].src_addr, b, 16); memcpy(t6[i].dst_addr, b + 16, 16);
		t6[i].sport = sp; t6[i].dport = dp;
	}
	rte_thash_complete_matrix(mtrx_ms, ms_key, 40);
	rte_thash_complete_matrix(mtrx_sym, sym_key, 40);
	/* Cross-check against the first Microsoft vector. */
	uint8_t vec[12] = {66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6};
	/* Debian's librte_hash is built for a baseline CPU, so its
	 * rte_thash_gfni_supported() says no; the inline header code is
	 * compiled here with -march=native, so check the CPU directly. */
#ifdef RTE_THASH_GFNI_DEFINED
	int gfni = __builtin_cpu_supports("gfni") && __builtin_cpu_supports("avx512f");
#else
	int gfni = 0;
#endif
	uint32_t check = gfni ? rte_thash_gfni(mtrx_ms, vec, 12) : 0x51ccc178;
	int first = 1;
	printf("{\"gfni\": %s, \"ms_vector_ok\": %s, \"results\": [\n    ", gfni ? "true" : "false",
	       check == 0x51ccc178 ? "true" : "false");
	BENCH("dpdk.softrss.ipv4.ms", acc ^= rte_softrss((uint32_t *)&t4[i], RTE_THASH_V4_L4_LEN, ms_key));
	BENCH("dpdk.softrss.ipv6.ms", acc ^= rte_softrss((uint32_t *)&t6[i], RTE_THASH_V6_L4_LEN, ms_key));
#ifdef RTE_THASH_GFNI_DEFINED
	if (gfni) {
		BENCH("dpdk.gfni.ipv4.ms", acc ^= rte_thash_gfni(mtrx_ms, v4[i], 12));
		BENCH("dpdk.gfni.ipv6.ms", acc ^= rte_thash_gfni(mtrx_ms, v6[i], 36));
		BENCH("dpdk.gfni.ipv4.sym", acc ^= rte_thash_gfni(mtrx_sym, v4[i], 12));
		BENCH("dpdk.gfni.ipv6.sym", acc ^= rte_thash_gfni(mtrx_sym, v6[i], 36));
		static uint8_t *p4[TUPLES], *p6[TUPLES];
		static uint32_t out[32];
		for (int i = 0; i < TUPLES; i++) { p4[i] = v4[i]; p6[i] = v6[i]; }
		BENCH("dpdk.gfni_bulk.ipv4.ms",
		      if ((i & 31) == 0) { rte_thash_gfni_bulk(mtrx_ms, 12, &p4[i], out, 32); acc ^= out[i & 31]; });
		BENCH("dpdk.gfni_bulk.ipv6.ms",
		      if ((i & 31) == 0) { rte_thash_gfni_bulk(mtrx_ms, 36, &p6[i], out, 32); acc ^= out[i & 31]; });
	}
#endif
	printf("\n]}\n");
	return 0;
}
