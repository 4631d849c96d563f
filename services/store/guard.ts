// Leader-guarded writes: the store view a leader writes its singleton duties through compares the
// leader key in every transaction, so a replica that lost the key (it stalled, its etcd lease
// ran out, another replica was elected) cannot write any more.

/** The leader key a store view's writes are guarded by. */
export interface LeaderGuard {
  key: string;
  /** The key's create revision when this replica won it: a new leader's key has another. */
  createRevision: string;
}

/** A guarded write found that this replica no longer holds the leader key; nothing was written. */
export class LeadershipLostError extends Error {
  override name = "LeadershipLostError";
}
