// A kernel link impairment for a veth pair, built from what a kernel without sch_netem has:
// cls_bpf (direct action), the clsact qdisc, HTB and pfifo. tests/integration/link_impair.py
// compiles this file at test time (clang -O2 -g -target bpf) with the parameters as -D defines
// and attaches its three programs (docs/replication.md §12):
//
//   impair_egress   clsact egress of the sending end. Runs before the root qdisc, with no qdisc
//                   lock held, so it may clone: it decides each frame's fate and writes it, with a
//                   sequence number, in skb->mark; sends a duplicate (bpf_clone_redirect to its
//                   own egress) for DUP_THRESH of the frames not lost, and ahead of a frame that
//                   must be delayed a "ballast" clone: a frame grown to BALLAST_LEN bytes with a
//                   junk EtherType. (The HTB root has a size table so that the qdisc takes the
//                   ballast's length again after this hook grew it.)
//   impair_classify filter of the HTB root qdisc of the sending end. Drops the frames marked
//                   lost (LOSS_THRESH of them; true loss: a drop inside the qdisc answers the
//                   sender "sent", while a drop at clsact makes the kernel's tpacket_snd put the
//                   frame back in its TX ring and send it again) and sends each frame to its class:
//                   1:10, or the slow class 1:20 for SLOW_THRESH of them.
//   impair_observe  clsact ingress of the receiving end: reads the stamp (skb->mark survives a
//                   veth within one namespace) and counts frames that arrive after a higher
//                   sequence number did (reordered) or with the same one (duplicates).
//
// Why ballast: an HTB class sends a frame at once when it has tokens, so a shaped class alone
// delays nothing on an idle link (and neither does TBF). A ballast frame queued just ahead of a
// frame in a class whose burst is one byte takes the class's tokens: the frame behind it waits
// the ballast's transmission time at the class's rate (DELAY_NS, SLOW_DELAY_NS). The program
// keeps a model of each class (when it will be free to send the next frame: HTB sends a frame
// when the previous one's transmission time has passed) and adds a ballast only when the frame
// would otherwise wait less than that delay: a backlog delays by itself, and ballast there would
// only halve the class's throughput. So every frame of a delayed class waits at least its delay
// (within the model's precision: two CPUs may update it at once). The ballast reaches the peer
// (and, as an outgoing frame, the sender's own packet socket); both drop it as not IPv4. A frame
// sent to the slow class waits there while later frames pass through 1:10: reordering.
//
// The thresholds are probabilities scaled to 2^32, compared with bpf_get_prandom_u32().
// Helpers are declared by their ids from linux/bpf.h (no libbpf headers needed).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>

#ifndef LOSS_THRESH
#define LOSS_THRESH 0u
#endif
#ifndef DUP_THRESH
#define DUP_THRESH 0u
#endif
#ifndef SLOW_THRESH
#define SLOW_THRESH 0u
#endif
#ifndef DELAY_NS
#define DELAY_NS 0  // class 1:10: 0 (not shaped), or every frame waits this long at least
#endif
#ifndef FAST_PS_PER_BYTE
#define FAST_PS_PER_BYTE 0  // class 1:10's transmission time per byte (picoseconds)
#endif
#ifndef SLOW_DELAY_NS
#define SLOW_DELAY_NS 0  // class 1:20: every frame waits this long at least
#endif
#ifndef SLOW_PS_PER_BYTE
#define SLOW_PS_PER_BYTE 0
#endif
#ifndef BALLAST_LEN
#define BALLAST_LEN 1514  // a full frame at MTU 1500: the veth forwards nothing longer
#endif
#define JUNK_ETHERTYPE 0x88b5  // IEEE local experimental: no receiver takes it for IPv4

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name

static unsigned int (*get_prandom_u32)(void) = (void *)BPF_FUNC_get_prandom_u32;
static void *(*map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*clone_redirect)(struct __sk_buff *skb, __u32 ifindex, __u64 flags) =
    (void *)BPF_FUNC_clone_redirect;
static long (*skb_change_tail)(struct __sk_buff *skb, __u32 len, __u64 flags) =
    (void *)BPF_FUNC_skb_change_tail;
static __u64 (*ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static long (*skb_store_bytes)(struct __sk_buff *skb, __u32 offset, const void *from, __u32 len,
                               __u64 flags) = (void *)BPF_FUNC_skb_store_bytes;

// skb->mark: bits 0..7 the frame's fate, bits 8..31 its sequence number on this sending end.
#define M_STAMPED 0x01u
#define M_SLOW 0x02u     // goes through the slow class 1:20
#define M_DUP 0x04u      // the duplicate clone
#define M_BALLAST 0x08u  // the ballast clone
#define M_LOST 0x10u     // impair_classify drops it
#define M_CLONE (M_DUP | M_BALLAST)

// Counters (one array map per loaded program; link_impair.py reads them by the program's id).
enum {
  C_SEQ,         // egress: frames stamped (the last sequence number)
  C_DUPS,        // egress: duplicates sent
  C_BALLAST,     // egress: ballast frames sent
  C_PASSED,      // classify: frames queued in 1:10 (duplicates included, ballast not)
  C_SLOWED,      // classify: frames queued in the slow class 1:20
  C_LOST,        // classify: frames dropped
  C_ARRIVED,     // observe: stamped frames that reached the receiving end (ballast not)
  C_REORDERED,   // observe: arrived after a frame with a higher sequence number
  C_DUP_ARRIVED, // observe: arrived with the sequence number of the latest frame again
  C_MAX_SEQ,     // observe: the highest sequence number seen
  C_FREE_AT,     // egress: when class 1:10 can send its next frame (ns, model)
  C_SLOW_FREE_AT,  // the same for 1:20
  C_COUNT
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, C_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} impair_counters SEC(".maps");

static __u64* counter(__u32 i) { return map_lookup_elem(&impair_counters, &i); }

static void count(__u32 i) {
  __u64* c = counter(i);
  if (c) __sync_fetch_and_add(c, 1);
}

static int chance(__u32 thresh) { return thresh != 0 && get_prandom_u32() < thresh; }

// The class model: `free_at` is when the class can start sending the next frame queued now.
// Returns how long a frame queued now would wait.
static __u64 queue_wait(__u64* free_at, __u64 now) {
  if (*free_at < now) *free_at = now;
  return *free_at - now;
}

static void queue_add(__u64* free_at, __u64 now, __u64 ns, __u64 delay_ns) {
  *free_at += ns;
  // Bounded: frames the model counts but HTB never sent (the peer end down: the qdisc drops
  // them) must not make it believe in a backlog for long. A model short of the real backlog
  // adds ballast where the backlog would have done: more delay, never less.
  if (*free_at > now + 16 * delay_ns) *free_at = now + 16 * delay_ns;
}

SEC("impair/egress")
int impair_egress(struct __sk_buff* skb) {
  if (skb->mark & M_CLONE) {
    // A clone of ours on its way through this hook again: a ballast frame becomes junk of the
    // ballast length (the helpers unshare the data: the original frame is not touched).
    if (skb->mark & M_BALLAST) {
      const __u16 junk = __builtin_bswap16(JUNK_ETHERTYPE);
      if (skb_change_tail(skb, BALLAST_LEN, 0) != 0 ||
          skb_store_bytes(skb, 12, &junk, sizeof(junk), 0) != 0) {
        return TC_ACT_SHOT;  // cannot happen for a frame that fits the MTU; never sent as is
      }
    }
    return TC_ACT_OK;
  }
  __u64* seq = counter(C_SEQ);
  if (!seq) return TC_ACT_OK;
  __u32 mark = M_STAMPED | ((__u32)__sync_fetch_and_add(seq, 1) + 1) << 8;
  if (chance(SLOW_THRESH)) mark |= M_SLOW;
  if (chance(LOSS_THRESH)) mark |= M_LOST;
  const int dup = !(mark & M_LOST) && chance(DUP_THRESH);  // as sluiced's own seam does
  const int slow = (mark & M_SLOW) != 0;
  const __u64 delay_ns = slow ? SLOW_DELAY_NS : DELAY_NS;
  const __u64 ps_per_byte = slow ? SLOW_PS_PER_BYTE : FAST_PS_PER_BYTE;
  __u64* free_at = delay_ns ? counter(slow ? C_SLOW_FREE_AT : C_FREE_AT) : 0;
  const __u64 now = free_at ? ktime_get_ns() : 0;
  const __u64 cost = (__u64)skb->len * ps_per_byte / 1000;
  // Clones are queued before the frame itself returns to the qdisc: ballast first (it holds
  // the class's tokens), then the duplicate, then the frame.
  if (free_at && queue_wait(free_at, now) < delay_ns) {
    skb->mark = (mark & ~M_LOST) | M_BALLAST;  // the ballast of a lost frame still delays
    if (clone_redirect(skb, skb->ifindex, 0) == 0) {
      count(C_BALLAST);
      queue_add(free_at, now, delay_ns, delay_ns);
    }
  }
  if (dup) {
    skb->mark = mark | M_DUP;
    if (clone_redirect(skb, skb->ifindex, 0) == 0) {
      count(C_DUPS);
      if (free_at) queue_add(free_at, now, cost, delay_ns);
    }
  }
  if (free_at && !(mark & M_LOST)) queue_add(free_at, now, cost, delay_ns);
  skb->mark = mark;
  return TC_ACT_OK;
}

SEC("impair/classify")
int impair_classify(struct __sk_buff* skb) {
  const __u32 mark = skb->mark;
  if (!(mark & M_STAMPED)) return TC_ACT_UNSPEC;  // not seen at egress: the default class
  if (mark & M_LOST) {
    count(C_LOST);
    return TC_ACT_SHOT;
  }
  if (!(mark & M_BALLAST)) count((mark & M_SLOW) ? C_SLOWED : C_PASSED);
  // Minor of the class; the filter's classid (1:10) gives the major.
  skb->tc_classid = (mark & M_SLOW) ? 0x20 : 0x10;
  return TC_ACT_OK;
}

SEC("impair/observe")
int impair_observe(struct __sk_buff* skb) {
  const __u32 mark = skb->mark;
  if (!(mark & M_STAMPED) || (mark & M_BALLAST)) return TC_ACT_OK;
  __u64* max = counter(C_MAX_SEQ);
  if (!max) return TC_ACT_OK;
  const __u64 seq = mark >> 8;
  count(C_ARRIVED);
  // Racy between CPUs (one receiving softirq at a time in practice): a count, not a proof.
  if (seq > *max) {
    *max = seq;
  } else if (seq == *max) {
    count(C_DUP_ARRIVED);
  } else {
    count(C_REORDERED);
  }
  return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
