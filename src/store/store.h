#pragma once

#include <memory>
#include <string>

#include "ferry/status.h"
#include "store/bucket_store.h"
#include "store/claim_store.h"
#include "store/deployment_store.h"
#include "store/message_queue.h"
#include "store/schedule_store.h"
#include "store/snapshot_store.h"
#include "store/topic_store.h"

namespace ferry {

// Ferry's durable state, one interface a concern (see each header; ClaimStore is how nodes divide work). A backend implements them all over one
// database, so that a change spanning concerns (a deploy, a schedule's tick and its publish, a bucket's events)
// is one transaction. Every mutating call is durable when it returns OK. Thread-safe.
//
// Callers take the narrowest interface they use: the scheduler a ScheduleStore, the bucket service a BucketStore.
class Store : public TopicStore,
              public MessageQueue,
              public SnapshotStore,
              public DeploymentStore,
              public ScheduleStore,
              public BucketStore,
              public ClaimStore {};

struct StoreOptions {
  // Directory holding the database file; created when missing.
  std::string data_dir = "./data";
  // fsync each commit (group commit shares it between concurrent requests). Off only for throwaway data.
  bool sync = true;
};

// The embedded store: one SQLite database (data_dir/ferry.db).
StatusOr<std::unique_ptr<Store>> MakeSqliteStore(StoreOptions const& options);
// The store several nodes share: a PostgreSQL database, named by a libpq connection string or URI
// ("postgresql://user@host/db"). Migrates it on first use. See docs/scale-out.md.
StatusOr<std::unique_ptr<Store>> MakePostgresStore(std::string const& conninfo);

}  // namespace ferry
