//! Partition leases and a leader election in a JetStream key-value bucket.
//!
//! **The bucket** (default `dnsight-workers`) has `max_age = ttl`: a key that nobody rewrites
//! within `ttl` disappears (nats-server 2.9 has no per-key TTL; the bucket's age limit, measured
//! by the server's clock alone, plays that part). It holds:
//! - `m.MEMBER`: a member's heartbeat, rewritten every `heartbeat`;
//! - `p.N`: the lease of partition N, its value the owner's name. A lease is taken with
//!   *create* (JetStream stores it only if the key has no live value) and renewed with *update
//!   at the expected revision* (stored only if nobody wrote the key since): so two members can
//!   never both hold one partition, whatever the timing — the server orders the writes;
//! - `leader.NAME`: an [`Election`]'s key, the same mechanism on one key.
//!
//! **Fair share.** Every heartbeat a member lists the live members (sorted by name) and the
//! taken partitions. With `n` members, the first `P mod n` by name own `ceil(P / n)` partitions,
//! the others `floor(P / n)` (64 over 3: 22, 21, 21). A member above its share asks its user to
//! release the surplus ([`Group::releasing`]: checkpoint, then [`Group::released`]) and deletes
//! those leases; a member below it creates leases on free partitions (starting at its own
//! offset of the ring, so members joining together rarely collide; a collision is only a failed
//! create). A member that dies stops renewing: its heartbeat and leases expire after `ttl` and
//! the survivors' shares grow, so they take its partitions within `ttl` + one heartbeat.
//!
//! **Fencing.** A member counts a lease as its own only until `ttl - heartbeat` after the
//! renewal it last sent was accepted (its own monotonic clock; the server removes the key no
//! earlier than `ttl` after that write). A member stalled longer (a paused process, lost
//! connectivity) has stopped using the partition before anyone else can take it, and learns at
//! its next renewal (a wrong-revision answer) that the lease is gone.

use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Timing and names of a group of members sharing partitions.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub url: String,
    /// The key-value bucket (created when missing, `max_age = ttl`).
    pub bucket: String,
    pub partitions: u32,
    /// This member's name: unique in the group (letters, digits, `-` and `_`).
    pub member: String,
    pub heartbeat: Duration,
    /// A member or lease not renewed this long is gone.
    pub ttl: Duration,
    /// Release surplus partitions at once, without waiting for [`Group::released`] (a member
    /// with no state to save: tests, tools).
    pub auto_release: bool,
}

impl GroupConfig {
    pub fn new(url: &str, partitions: u32, member: &str) -> GroupConfig {
        GroupConfig {
            url: url.to_string(),
            bucket: "dnsight-workers".into(),
            partitions,
            member: member.to_string(),
            heartbeat: Duration::from_secs(2),
            ttl: Duration::from_secs(10),
            auto_release: false,
        }
    }
}

/// A member's name as a key part: letters, digits, `-`, `_` (others become `_`), at most 64.
pub fn member_name(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if v.is_empty() {
        "member".into()
    } else {
        v
    }
}

#[derive(Default)]
struct Shared {
    /// Partition -> (revision of our lease, when the renewal that wrote it was sent).
    owned: BTreeMap<u32, (u64, Instant)>,
    /// Partitions this member wants to give up (the user checkpoints them first).
    releasing: BTreeSet<u32>,
    /// Partitions the user is done with: their leases are deleted at the next beat.
    released: BTreeSet<u32>,
    members: Vec<String>,
    /// Leases lost (renewal refused): for the log.
    lost: u64,
    stop: bool,
    /// On stop: delete our leases and heartbeat (a clean leave), or not (a crash).
    leave: bool,
    beats: u64,
    error: Option<String>,
}

/// One member of a partition group (see the module doc). Dropping it without
/// [`Group::leave`] is like a crash: its leases expire after `ttl`.
pub struct Group {
    cfg: GroupConfig,
    shared: Arc<Mutex<Shared>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The share of member `rank` of `n`: the first `P mod n` take one more.
pub fn fair_share(partitions: u32, n: usize, rank: usize) -> usize {
    let n = n.max(1);
    let p = partitions as usize;
    p / n + usize::from(rank < p % n)
}

impl Group {
    /// Starts the member's thread (connects, creates the bucket, heartbeats); returns at once.
    pub fn join(mut cfg: GroupConfig) -> Result<Group, String> {
        cfg.member = member_name(&cfg.member);
        if cfg.heartbeat.is_zero() || cfg.ttl < cfg.heartbeat * 2 {
            return Err(format!(
                "lease timing: ttl ({:?}) must be at least twice the heartbeat ({:?})",
                cfg.ttl, cfg.heartbeat
            ));
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (c2, s2) = (cfg.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("dnsight-lease".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        lock(&s2).error = Some(e.to_string());
                        return;
                    }
                };
                rt.block_on(run_group(c2, s2));
            })
            .map_err(|e| e.to_string())?;
        Ok(Group {
            cfg,
            shared,
            thread: Some(thread),
        })
    }

    pub fn member(&self) -> &str {
        &self.cfg.member
    }

    /// The partitions whose lease this member holds now (valid by its own clock), including
    /// those it is releasing.
    pub fn owned(&self) -> Vec<u32> {
        let margin = self.cfg.ttl.saturating_sub(self.cfg.heartbeat);
        lock(&self.shared)
            .owned
            .iter()
            .filter(|(_, (_, t))| t.elapsed() < margin)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Partitions to give up: checkpoint each, stop reading it, then call [`Group::released`].
    pub fn releasing(&self) -> Vec<u32> {
        lock(&self.shared).releasing.iter().copied().collect()
    }

    /// The user is done with `p` (checkpointed, not read any more): its lease is deleted.
    pub fn released(&self, p: u32) {
        let mut s = lock(&self.shared);
        if s.releasing.remove(&p) {
            s.released.insert(p);
        }
    }

    /// Live members at the last beat, sorted.
    pub fn members(&self) -> Vec<String> {
        lock(&self.shared).members.clone()
    }

    /// Heartbeats done so far (tests wait on it).
    pub fn beats(&self) -> u64 {
        lock(&self.shared).beats
    }

    /// Leases this member lost (a renewal refused: someone else has the partition now).
    pub fn lost(&self) -> u64 {
        lock(&self.shared).lost
    }

    /// The last error talking to NATS (cleared by a successful beat).
    pub fn error(&self) -> Option<String> {
        lock(&self.shared).error.clone()
    }

    /// Leaves cleanly: deletes this member's leases and heartbeat (checkpoint first), so the
    /// others take its partitions at their next beat instead of after `ttl`.
    pub fn leave(mut self) {
        {
            let mut s = lock(&self.shared);
            s.stop = true;
            s.leave = true;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens (or creates) the lease bucket.
pub async fn bucket(
    js: &async_nats::jetstream::Context,
    name: &str,
    ttl: Duration,
) -> Result<async_nats::jetstream::kv::Store, String> {
    if let Ok(kv) = js.get_key_value(name).await {
        return Ok(kv);
    }
    // the stream a key-value bucket is (what `create_key_value` makes, without its account
    // query, whose answer async-nats 0.51 cannot parse from nats-server 2.9)
    use async_nats::jetstream::stream;
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: ttl,
        duplicate_window: ttl.min(Duration::from_secs(120)),
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("creating the key-value bucket {name}: {e}"))?;
    js.get_key_value(name)
        .await
        .map_err(|e| format!("opening the key-value bucket {name}: {e}"))
}

async fn connect(url: &str) -> Result<async_nats::jetstream::Context, String> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))?;
    Ok(async_nats::jetstream::new(client))
}

fn part_key(p: u32) -> String {
    format!("p.{p}")
}

async fn run_group(cfg: GroupConfig, shared: Arc<Mutex<Shared>>) {
    let js = match connect(&cfg.url).await {
        Ok(j) => j,
        Err(e) => {
            lock(&shared).error = Some(e);
            return;
        }
    };
    let kv = loop {
        match bucket(&js, &cfg.bucket, cfg.ttl).await {
            Ok(kv) => break kv,
            Err(e) => {
                lock(&shared).error = Some(e);
                if lock(&shared).stop {
                    return;
                }
                tokio::time::sleep(cfg.heartbeat).await;
            }
        }
    };
    loop {
        let t0 = Instant::now();
        let (stop, leave) = {
            let s = lock(&shared);
            (s.stop, s.leave)
        };
        if stop {
            if leave {
                let owned: Vec<(u32, u64)> = lock(&shared)
                    .owned
                    .iter()
                    .map(|(p, (r, _))| (*p, *r))
                    .collect();
                for (p, rev) in owned {
                    let _ = kv.delete_expect_revision(part_key(p), Some(rev)).await;
                }
                let _ = kv.delete(format!("m.{}", cfg.member)).await;
            }
            return;
        }
        match beat(&cfg, &kv, &shared).await {
            Ok(()) => {
                let mut s = lock(&shared);
                s.error = None;
                s.beats += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, "partition leases: a heartbeat failed");
                lock(&shared).error = Some(e);
            }
        }
        // sleep the rest of the heartbeat, waking early to stop
        let end = t0 + cfg.heartbeat;
        while Instant::now() < end && !lock(&shared).stop {
            tokio::time::sleep(Duration::from_millis(20).min(cfg.heartbeat)).await;
        }
    }
}

/// One heartbeat: renew, release, look at the group, claim.
async fn beat(
    cfg: &GroupConfig,
    kv: &async_nats::jetstream::kv::Store,
    shared: &Mutex<Shared>,
) -> Result<(), String> {
    let me = bytes::Bytes::from(cfg.member.clone());
    kv.put(format!("m.{}", cfg.member), me.clone())
        .await
        .map_err(|e| format!("heartbeat: {e}"))?;
    // deletes of released partitions, then renewals of the rest
    let released: Vec<(u32, u64)> = {
        let mut s = lock(shared);
        let r = std::mem::take(&mut s.released);
        r.into_iter()
            .filter_map(|p| s.owned.remove(&p).map(|(rev, _)| (p, rev)))
            .collect()
    };
    for (p, rev) in released {
        if let Err(e) = kv.delete_expect_revision(part_key(p), Some(rev)).await {
            tracing::debug!(partition = p, error = %e, "deleting a released lease");
        }
        tracing::info!(partition = p, member = %cfg.member, "partition released");
    }
    let owned: Vec<(u32, u64)> = lock(shared)
        .owned
        .iter()
        .map(|(p, (r, _))| (*p, *r))
        .collect();
    for (p, rev) in owned {
        let sent = Instant::now();
        match kv.update(part_key(p), me.clone(), rev).await {
            Ok(r) => {
                lock(shared).owned.insert(p, (r, sent));
            }
            Err(e) if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => {
                let mut s = lock(shared);
                s.owned.remove(&p);
                s.releasing.remove(&p);
                s.lost += 1;
                tracing::warn!(partition = p, member = %cfg.member, "partition lease lost (another member holds it now)");
            }
            Err(e) => return Err(format!("renewing the lease of partition {p}: {e}")),
        }
    }
    // the group: live members and taken partitions
    let mut members = Vec::new();
    let mut taken = BTreeSet::new();
    let mut keys = kv.keys().await.map_err(|e| format!("listing keys: {e}"))?;
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| format!("listing keys: {e}"))?;
        if let Some(m) = k.strip_prefix("m.") {
            members.push(m.to_string());
        } else if let Some(p) = k.strip_prefix("p.").and_then(|p| p.parse::<u32>().ok()) {
            taken.insert(p);
        }
    }
    if !members.contains(&cfg.member) {
        members.push(cfg.member.clone());
    }
    members.sort();
    members.dedup();
    let n = members.len();
    let rank = members.iter().position(|m| *m == cfg.member).unwrap_or(0);
    let share = fair_share(cfg.partitions, n, rank);
    let start = (rank * cfg.partitions as usize / n) as u32;
    let mut need = {
        let mut s = lock(shared);
        s.members = members;
        // surplus: release the partitions furthest from this member's own stretch of the ring
        let keep_count = s.owned.len() - s.releasing.len().min(s.owned.len());
        if keep_count > share {
            let mut cands: Vec<u32> = s
                .owned
                .keys()
                .copied()
                .filter(|p| !s.releasing.contains(p))
                .collect();
            let dist = |p: u32| (p + cfg.partitions - start) % cfg.partitions;
            cands.sort_by_key(|&p| std::cmp::Reverse(dist(p)));
            for p in cands.into_iter().take(keep_count - share) {
                if cfg.auto_release {
                    s.released.insert(p);
                } else {
                    s.releasing.insert(p);
                }
            }
            0
        } else {
            share.saturating_sub(s.owned.len())
        }
    };
    for i in 0..cfg.partitions {
        if need == 0 {
            break;
        }
        let p = (start + i) % cfg.partitions;
        if taken.contains(&p) {
            continue;
        }
        let sent = Instant::now();
        match kv.create(part_key(p), me.clone()).await {
            Ok(rev) => {
                lock(shared).owned.insert(p, (rev, sent));
                need -= 1;
                tracing::info!(partition = p, member = %cfg.member, "partition claimed");
            }
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("claiming partition {p}: {e}")),
        }
    }
    Ok(())
}

/// One leader among the members naming the same key (see the module doc): the key
/// `leader.NAME` of the bucket, created by whoever finds it free and renewed at its revision.
pub struct Election {
    ttl: Duration,
    heartbeat: Duration,
    state: Arc<Mutex<(Option<Instant>, bool, bool)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Election {
    /// Starts campaigning for `leader.NAME` in `cfg.bucket` (cfg.partitions is unused).
    pub fn start(cfg: &GroupConfig, name: &str) -> Result<Election, String> {
        let key = format!("leader.{}", member_name(name));
        let member = member_name(&cfg.member);
        let cfg = cfg.clone();
        // (leader since: the accepted write's send time; stop; resign)
        let state = Arc::new(Mutex::new((None::<Instant>, false, false)));
        let st = state.clone();
        let (ttl, heartbeat) = (cfg.ttl, cfg.heartbeat);
        let thread = std::thread::Builder::new()
            .name("dnsight-election".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let lk = |s: &Mutex<(Option<Instant>, bool, bool)>| {
                        *s.lock().unwrap_or_else(|p| p.into_inner())
                    };
                    let Ok(js) = connect(&cfg.url).await else {
                        return;
                    };
                    let kv = loop {
                        if let Ok(kv) = bucket(&js, &cfg.bucket, cfg.ttl).await {
                            break kv;
                        }
                        if lk(&st).1 {
                            return;
                        }
                        tokio::time::sleep(cfg.heartbeat).await;
                    };
                    let me = bytes::Bytes::from(member.clone());
                    let mut rev: Option<u64> = None;
                    loop {
                        let t0 = Instant::now();
                        let (_, stop, resign) = lk(&st);
                        if stop {
                            if let (true, Some(r)) = (resign, rev) {
                                let _ = kv.delete_expect_revision(&key, Some(r)).await;
                            }
                            return;
                        }
                        let r = match rev {
                            Some(r) => kv.update(&key, me.clone(), r).await.map_err(|e| {
                                e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision
                            }),
                            None => kv.create(&key, me.clone()).await.map_err(|e| {
                                e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists
                            }),
                        };
                        match r {
                            Ok(r) => {
                                if rev.is_none() {
                                    tracing::info!(key = %key, member = %member, "elected leader");
                                }
                                rev = Some(r);
                                st.lock().unwrap_or_else(|p| p.into_inner()).0 = Some(t0);
                            }
                            Err(true) => {
                                if rev.is_some() {
                                    tracing::warn!(key = %key, member = %member, "leadership lost");
                                }
                                rev = None;
                                st.lock().unwrap_or_else(|p| p.into_inner()).0 = None;
                            }
                            Err(false) => {} // NATS trouble: the lease runs out by the clock
                        }
                        let end = t0 + cfg.heartbeat;
                        while Instant::now() < end && !lk(&st).1 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(Election {
            ttl,
            heartbeat,
            state,
            thread: Some(thread),
        })
    }

    /// Is this member the leader now (its lease valid by its own clock)?
    pub fn is_leader(&self) -> bool {
        let margin = self.ttl.saturating_sub(self.heartbeat);
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .is_some_and(|t| t.elapsed() < margin)
    }

    /// Gives up the leadership at once (a standby takes over at its next heartbeat).
    pub fn resign(mut self) {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.1 = true;
            s.2 = true;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_one() {
        for n in 1..10 {
            let v: Vec<usize> = (0..n).map(|r| fair_share(64, n, r)).collect();
            assert_eq!(v.iter().sum::<usize>(), 64);
            assert!(v.iter().max().unwrap() - v.iter().min().unwrap() <= 1);
        }
        assert_eq!(
            (0..3).map(|r| fair_share(64, 3, r)).collect::<Vec<_>>(),
            vec![22, 21, 21]
        );
        assert_eq!(member_name("w 1/x"), "w_1_x");
        assert_eq!(member_name(""), "member");
    }
}
