import { MAX_PRIORITY } from './priority.js'

/** One schema migration: `sql` gets the quoted schema name. */
export interface Migration {
  readonly version: number
  readonly name: string
  readonly sql: (s: string) => string
}

/** Highest value of an `integer` column: a delivery counter there cannot be incremented. */
const INT_MAX = 2_147_483_647

/**
 * Versioned migrations, applied in order, each in its own transaction. Never edit a released
 * one: add the next version.
 *
 * The jobs table is the hot path: one index serves the fetch (per priority, oldest `run_at`
 * first, ready rows only by range); the lease columns (`locked_until`, `deliveries`) are not
 * indexed, so taking a lease is a HOT update that writes no index entry. `fillfactor` leaves room
 * on each page for those updates.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'jobs, dead letters, results, groups, kv',
    sql: (s) => `
      CREATE TABLE ${s}.jobs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_at timestamptz NOT NULL DEFAULT now(),
        locked_until timestamptz,
        deliveries integer NOT NULL DEFAULT 0,
        priority smallint NOT NULL DEFAULT 0,
        queue text NOT NULL,
        body bytea NOT NULL
      ) WITH (fillfactor = 70);
      CREATE INDEX jobs_fetch ON ${s}.jobs (queue, priority, run_at, id);

      CREATE TABLE ${s}.dead_letters (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dead_at timestamptz NOT NULL DEFAULT now(),
        deliveries integer NOT NULL,
        priority smallint NOT NULL DEFAULT 0,
        queue text NOT NULL,
        reason text NOT NULL,
        error text,
        body bytea NOT NULL
      );
      CREATE INDEX dead_letters_queue ON ${s}.dead_letters (queue, id);

      CREATE TABLE ${s}.results (
        id text PRIMARY KEY,
        state text NOT NULL,
        expires_at timestamptz NOT NULL,
        record text NOT NULL
      );
      CREATE INDEX results_expires ON ${s}.results (expires_at);

      CREATE TABLE ${s}.groups (
        id text PRIMARY KEY,
        size integer NOT NULL,
        completed integer NOT NULL,
        expires_at timestamptz NOT NULL
      );
      CREATE INDEX groups_expires ON ${s}.groups (expires_at);
      CREATE TABLE ${s}.group_members (
        group_id text NOT NULL,
        idx integer NOT NULL,
        outcome text NOT NULL,
        PRIMARY KEY (group_id, idx)
      );

      CREATE TABLE ${s}.kv (
        key text PRIMARY KEY,
        value text NOT NULL,
        expires_at timestamptz NOT NULL
      );
      CREATE INDEX kv_expires ON ${s}.kv (expires_at);
    `,
  },
  {
    version: 2,
    name: 'complete_group_member(): an expired group starts over',
    // One call records a member and counts it, atomically. A group whose bookkeeping expired
    // is dropped first (under its row lock), so a late member starts a new count. Each
    // statement of a VOLATILE function reads a fresh snapshot: the final read sees every
    // member committed before our counter update, so the completing call gets all outcomes.
    sql: (s) => `
      CREATE FUNCTION ${s}.complete_group_member(
        p_group text, p_idx integer, p_outcome text, p_size integer, p_ttl_ms float8)
      RETURNS TABLE (completed integer, size integer, idxs integer[], outcomes text[])
      LANGUAGE plpgsql VOLATILE AS $fn$
      DECLARE
        v_inserted integer;
        v_completed integer;
        v_size integer;
        v_expires timestamptz := now() + p_ttl_ms * interval '1 millisecond';
      BEGIN
        PERFORM 1 FROM ${s}.groups WHERE id = p_group AND expires_at <= now() FOR UPDATE;
        IF FOUND THEN
          DELETE FROM ${s}.group_members WHERE group_id = p_group;
          DELETE FROM ${s}.groups WHERE id = p_group;
        END IF;
        INSERT INTO ${s}.group_members (group_id, idx, outcome) VALUES (p_group, p_idx, p_outcome)
        ON CONFLICT (group_id, idx) DO NOTHING;
        GET DIAGNOSTICS v_inserted = ROW_COUNT;
        INSERT INTO ${s}.groups AS g (id, size, completed, expires_at)
        VALUES (p_group, p_size, v_inserted, v_expires)
        ON CONFLICT (id) DO UPDATE SET completed = g.completed + v_inserted, expires_at = v_expires
        RETURNING g.completed, g.size INTO v_completed, v_size;
        IF v_completed < v_size THEN
          RETURN QUERY SELECT v_completed, v_size, NULL::integer[], NULL::text[];
        ELSE
          RETURN QUERY SELECT v_completed, v_size, array_agg(m.idx ORDER BY m.idx), array_agg(m.outcome ORDER BY m.idx)
            FROM ${s}.group_members m WHERE m.group_id = p_group;
        END IF;
      END
      $fn$;
    `,
  },
  {
    version: 3,
    name: 'lease_jobs() and next_due(): plans that do not depend on table statistics',
    // A queue table's statistics are stale by nature (and autovacuum may be off): with a
    // misestimate the planner picks a bitmap scan plus sort that reads a whole queue per fetch.
    // Inside these functions bitmap and sequential scans are off, so the fetch always walks the
    // (queue, priority, run_at, id) index in order and stops at its LIMIT; plpgsql caches the plan
    // per connection. `p_async`: commit without waiting for the WAL flush (set for this
    // transaction only; the caller's statement commits after the function returns).
    sql: (s) => `
      CREATE FUNCTION ${s}.lease_jobs(
        p_ack_ids bigint[], p_ack_dels integer[], p_queue text, p_limit integer, p_lease_ms float8,
        p_async boolean)
      RETURNS TABLE (id bigint, deliveries integer, priority smallint, body bytea)
      LANGUAGE plpgsql VOLATILE
      SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
      AS $fn$
      #variable_conflict use_column
      BEGIN
        IF p_async THEN
          PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
        IF p_ack_ids IS NOT NULL THEN
          DELETE FROM ${s}.jobs AS j USING unnest(p_ack_ids, p_ack_dels) AS a(id, d)
          WHERE j.id = a.id AND j.deliveries = a.d;
        END IF;
        IF p_limit > 0 THEN
          RETURN QUERY
          WITH c AS (
            SELECT l.id FROM generate_series(${MAX_PRIORITY}, 0, -1) AS p
            CROSS JOIN LATERAL (
              SELECT jobs.id FROM ${s}.jobs
              WHERE jobs.queue = p_queue AND jobs.priority = p.p AND jobs.run_at <= now()
                AND (jobs.locked_until IS NULL OR jobs.locked_until <= now())
              ORDER BY jobs.run_at, jobs.id
              LIMIT p_limit
              FOR UPDATE SKIP LOCKED
            ) l
            LIMIT p_limit)
          UPDATE ${s}.jobs AS j
          SET deliveries = j.deliveries + 1, locked_until = now() + p_lease_ms * interval '1 millisecond'
          FROM c WHERE j.id = c.id
          RETURNING j.id, j.deliveries, j.priority, j.body;
        END IF;
      END
      $fn$;

      -- Ms until the earliest row not leased (<= 0: one is due now) or the earliest lease to run
      -- out; NULL when neither exists.
      CREATE FUNCTION ${s}.next_due(p_queue text) RETURNS float8
      LANGUAGE sql STABLE
      SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
      AS $fn$
        SELECT ceil(extract(epoch FROM (min(t) - now())) * 1000)::float8 FROM (
          SELECT (SELECT jobs.run_at FROM ${s}.jobs
                  WHERE jobs.queue = p_queue AND jobs.priority = p
                    AND (jobs.locked_until IS NULL OR jobs.locked_until <= now())
                  ORDER BY jobs.run_at LIMIT 1) AS t
          FROM generate_series(0, ${MAX_PRIORITY}) AS p
          UNION ALL
          SELECT min(jobs.locked_until) FROM ${s}.jobs
          WHERE jobs.queue = p_queue AND jobs.run_at <= now() AND jobs.locked_until > now()) AS x
      $fn$;
    `,
  },
  {
    version: 4,
    name: 'jobs: priority and deliveries constrained (NOT VALID); lease_jobs() dead-letters a spent counter',
    // Rows out of range used to sit unfetchable forever (a priority outside 0..9 is never probed)
    // or to fail every fetch of their queue (deliveries at INT_MAX cannot be incremented). The
    // constraints are added NOT VALID: a short ACCESS EXCLUSIVE lock and no scan, yet every
    // insert and update from now on is checked. Rows already there are dealt with and the
    // constraints validated in version 5, without blocking the hot path.
    //
    // A counter at INT_MAX is a row delivered ~2^31 times (or garbage): the fetch moves it to
    // the dead letters ('exhausted') in the same statement instead of failing for the queue.
    sql: (s) => `
      ALTER TABLE ${s}.jobs ADD CONSTRAINT jobs_priority_range
        CHECK (priority BETWEEN 0 AND ${MAX_PRIORITY}) NOT VALID;
      ALTER TABLE ${s}.jobs ADD CONSTRAINT jobs_deliveries_range CHECK (deliveries >= 0) NOT VALID;

      CREATE OR REPLACE FUNCTION ${s}.lease_jobs(
        p_ack_ids bigint[], p_ack_dels integer[], p_queue text, p_limit integer, p_lease_ms float8,
        p_async boolean)
      RETURNS TABLE (id bigint, deliveries integer, priority smallint, body bytea)
      LANGUAGE plpgsql VOLATILE
      SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
      AS $fn$
      #variable_conflict use_column
      BEGIN
        IF p_async THEN
          PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
        IF p_ack_ids IS NOT NULL THEN
          DELETE FROM ${s}.jobs AS j USING unnest(p_ack_ids, p_ack_dels) AS a(id, d)
          WHERE j.id = a.id AND j.deliveries = a.d;
        END IF;
        IF p_limit > 0 THEN
          RETURN QUERY
          WITH c AS (
            SELECT l.id, l.deliveries FROM generate_series(${MAX_PRIORITY}, 0, -1) AS p
            CROSS JOIN LATERAL (
              SELECT jobs.id, jobs.deliveries FROM ${s}.jobs
              WHERE jobs.queue = p_queue AND jobs.priority = p.p AND jobs.run_at <= now()
                AND (jobs.locked_until IS NULL OR jobs.locked_until <= now())
              ORDER BY jobs.run_at, jobs.id
              LIMIT p_limit
              FOR UPDATE SKIP LOCKED
            ) l
            LIMIT p_limit),
          spent AS (
            DELETE FROM ${s}.jobs AS j USING c
            WHERE j.id = c.id AND c.deliveries >= ${INT_MAX}
            RETURNING j.queue, j.priority, j.deliveries, j.body),
          moved AS (
            INSERT INTO ${s}.dead_letters (queue, priority, deliveries, reason, error, body)
            SELECT spent.queue, spent.priority, spent.deliveries, 'exhausted',
              '{"name":"ErrandError","code":"ERR_TIMEOUT","message":"delivered ${INT_MAX} times: the delivery counter cannot go higher"}',
              spent.body
            FROM spent)
          UPDATE ${s}.jobs AS j
          SET deliveries = j.deliveries + 1, locked_until = now() + p_lease_ms * interval '1 millisecond'
          FROM c WHERE j.id = c.id AND c.deliveries < ${INT_MAX}
          RETURNING j.id, j.deliveries, j.priority, j.body;
        END IF;
      END
      $fn$;
    `,
  },
  {
    version: 5,
    name: 'jobs: rows out of range moved to the dead letters, constraints validated',
    // Version 4's NOT VALID constraints stop new bad rows, so what is moved here is all there
    // is. The DELETE takes row locks only, and VALIDATE a SHARE UPDATE EXCLUSIVE lock: workers
    // keep fetching, acking and publishing while this scans the table.
    sql: (s) => `
      WITH bad AS (
        DELETE FROM ${s}.jobs
        WHERE priority NOT BETWEEN 0 AND ${MAX_PRIORITY} OR deliveries < 0
        RETURNING queue, priority, deliveries, body)
      INSERT INTO ${s}.dead_letters (queue, priority, deliveries, reason, error, body)
      SELECT queue, priority, deliveries, 'undecodable',
        json_build_object('name', 'ErrandError', 'code', 'ERR_DECODE', 'message',
          CASE WHEN priority NOT BETWEEN 0 AND ${MAX_PRIORITY}
            THEN format('priority %s is outside 0..${MAX_PRIORITY}: the row could never be fetched', priority)
            ELSE format('deliveries %s is negative: not a delivery count', deliveries) END)::text,
        body
      FROM bad;
      ALTER TABLE ${s}.jobs VALIDATE CONSTRAINT jobs_priority_range;
      ALTER TABLE ${s}.jobs VALIDATE CONSTRAINT jobs_deliveries_range;
    `,
  },
  {
    version: 6,
    name: 'events: recent task events per queue',
    // Task events for history (`recentEvents`); live readers get them by NOTIFY. Writers trim
    // each queue to its retention in batches, so the table stays small and needs no sweep.
    sql: (s) => `
      CREATE TABLE ${s}.events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue text NOT NULL,
        body text NOT NULL
      );
      CREATE INDEX events_queue ON ${s}.events (queue, id);
    `,
  },
  {
    version: 7,
    name: 'flow control: rate log, concurrency slots, paused queues; take_rate() and acquire_slot()',
    // Each function is one call, one transaction: it takes a transaction advisory lock on its key
    // (rate and slot keys apart, schemas apart), then reads the clock, so calls on one key run one
    // after the other with increasing times, and each statement after the lock sees what the
    // previous holder committed (a fresh snapshot per statement: read committed only, hence the
    // check). `expires_at` lets the backend's sweep delete the rows of keys nobody uses any more;
    // the calls themselves delete the expired rows of their key first.
    sql: (s) => `
      CREATE TABLE ${s}.flow_rate (
        key text NOT NULL,
        at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (key, at)
      );
      CREATE INDEX flow_rate_expires ON ${s}.flow_rate (expires_at);

      CREATE TABLE ${s}.flow_slot (
        key text NOT NULL,
        holder text NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (key, holder)
      );
      CREATE INDEX flow_slot_expires ON ${s}.flow_slot (expires_at);

      CREATE TABLE ${s}.flow_paused (
        queue text PRIMARY KEY,
        paused_at timestamptz NOT NULL DEFAULT now()
      );

      -- 0 when a start was recorded for p_key, else ms (>= 1) until enough recorded starts left
      -- the window of p_per_ms for one more to fit (the oldest, when p_max did not change).
      -- A start is recorded at max(clock, last start + 1 us): times of a key strictly increase
      -- (they are its primary key), even when the server clock steps back.
      CREATE FUNCTION ${s}.take_rate(p_key text, p_max bigint, p_per_ms float8) RETURNS float8
      LANGUAGE plpgsql VOLATILE AS $fn$
      DECLARE
        v_per interval := p_per_ms * interval '1 millisecond';
        v_now timestamptz;
        v_count bigint;
        v_last timestamptz;
        v_free timestamptz;
      BEGIN
        IF current_setting('transaction_isolation') <> 'read committed' THEN
          RAISE EXCEPTION 'take_rate() needs the read committed isolation level, not %',
            current_setting('transaction_isolation');
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('errand.rate.' || ${quoteLiteral(s)} || '.' || p_key, 0));
        v_now := clock_timestamp();
        -- Not at <= v_now - v_per: that would leave the timestamp range for windows of millennia.
        DELETE FROM ${s}.flow_rate WHERE key = p_key AND at + v_per <= v_now;
        SELECT count(*), max(at) INTO v_count, v_last FROM ${s}.flow_rate WHERE key = p_key;
        IF v_count < p_max THEN
          v_now := greatest(v_now, v_last + interval '1 microsecond');
          INSERT INTO ${s}.flow_rate (key, at, expires_at) VALUES (p_key, v_now, v_now + v_per);
          RETURN 0;
        END IF;
        SELECT at INTO v_free FROM ${s}.flow_rate WHERE key = p_key ORDER BY at OFFSET v_count - p_max LIMIT 1;
        RETURN greatest(1, ceil(extract(epoch FROM (v_free + v_per - v_now)) * 1000))::float8;
      END
      $fn$;

      -- True when p_holder holds one of the p_max slots of p_key after the call (taken now, or
      -- held already: its lease is renewed). Expired slots of the key are deleted first.
      CREATE FUNCTION ${s}.acquire_slot(p_key text, p_holder text, p_max bigint, p_lease_ms float8)
      RETURNS boolean
      LANGUAGE plpgsql VOLATILE AS $fn$
      DECLARE
        v_now timestamptz;
        v_count bigint;
      BEGIN
        IF current_setting('transaction_isolation') <> 'read committed' THEN
          RAISE EXCEPTION 'acquire_slot() needs the read committed isolation level, not %',
            current_setting('transaction_isolation');
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('errand.slot.' || ${quoteLiteral(s)} || '.' || p_key, 0));
        v_now := clock_timestamp();
        DELETE FROM ${s}.flow_slot WHERE key = p_key AND expires_at <= v_now;
        UPDATE ${s}.flow_slot SET expires_at = v_now + p_lease_ms * interval '1 millisecond'
        WHERE key = p_key AND holder = p_holder;
        IF FOUND THEN
          RETURN true;
        END IF;
        SELECT count(*) INTO v_count FROM ${s}.flow_slot WHERE key = p_key;
        IF v_count >= p_max THEN
          RETURN false;
        END IF;
        -- Only this function inserts, under the lock: no conflict expected; the upsert is a guard.
        INSERT INTO ${s}.flow_slot AS f (key, holder, expires_at)
        VALUES (p_key, p_holder, v_now + p_lease_ms * interval '1 millisecond')
        ON CONFLICT (key, holder) DO UPDATE SET expires_at = EXCLUDED.expires_at;
        RETURN true;
      END
      $fn$;
    `,
  },
]

/** A quoted schema name (`"x"`) as an SQL string literal (`'"x"'`); it holds no quote of its own. */
function quoteLiteral(quotedSchema: string): string {
  return `'${quotedSchema}'`
}
