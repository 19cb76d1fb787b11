-- seatflow schema v1. PostgreSQL is the source of truth; constraints are the last line of defence.

CREATE TABLE restaurants (
    restaurant_id   text PRIMARY KEY,
    slug            text NOT NULL,
    name            text NOT NULL,
    timezone        text NOT NULL,
    contact_email   text,
    config          jsonb NOT NULL,          -- the whole validated RestaurantConfig
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per table ever configured; `table_key` is a compact integer so the exclusion
-- constraint below works with plain GiST range operators (no btree_gist extension needed).
CREATE TABLE restaurant_tables (
    table_key       serial PRIMARY KEY,
    restaurant_id   text NOT NULL REFERENCES restaurants(restaurant_id),
    table_id        text NOT NULL,
    UNIQUE (restaurant_id, table_id)
);

-- Guest identity, separate from the notification address a booking carries.
CREATE TABLE customers (
    customer_id     bigserial PRIMARY KEY,
    restaurant_id   text NOT NULL,
    name            text,
    email           text,
    phone           text,
    synthetic       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (restaurant_id, email)
);

CREATE TABLE bookings (
    booking_id          text PRIMARY KEY,
    restaurant_id       text NOT NULL,
    status              text NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    pending_ref         text,
    episode_kind        text NOT NULL CHECK (episode_kind IN ('created', 'modification')),
    episode_caused_by   text,
    booking_date        date NOT NULL,
    start_time          time NOT NULL,
    requested_end_time  time,                  -- as the upstream system sent it (may be null)
    end_time            time,                  -- effective end (turn minutes / service clamp)
    party_size          integer NOT NULL CHECK (party_size >= 1),
    customer_id         bigint REFERENCES customers(customer_id),
    customer_name       text,
    customer_email      text,                  -- where notifications go
    customer_phone      text,
    seating_preference  text,
    notes               text,
    source              text NOT NULL,
    channel             text,
    idempotency_key     text,
    ever_confirmed      boolean NOT NULL DEFAULT false,
    -- allocation bookkeeping ("retries are data")
    alloc_state         text NOT NULL DEFAULT 'idle'
                        CHECK (alloc_state IN ('idle', 'queued', 'retry', 'exhausted', 'done')),
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz,
    last_failure        text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bookings_pending_by_date ON bookings (restaurant_id, booking_date) WHERE status = 'pending';
CREATE INDEX bookings_retry_due ON bookings (next_attempt_at) WHERE alloc_state = 'retry';
CREATE INDEX bookings_queued ON bookings (updated_at) WHERE alloc_state = 'queued';

-- A table held by a confirmed booking for [start, end + buffer). Two bookings never hold one
-- table in overlapping windows: the exclusion constraint enforces it across all workers.
CREATE TABLE booking_tables (
    booking_id      text NOT NULL REFERENCES bookings(booking_id) ON DELETE CASCADE,
    table_key       integer NOT NULL REFERENCES restaurant_tables(table_key),
    restaurant_id   text NOT NULL,
    booking_date    date NOT NULL,
    during          tsrange NOT NULL,
    PRIMARY KEY (booking_id, table_key),
    CONSTRAINT booking_tables_no_overlap EXCLUDE USING gist (
        int4range(table_key, table_key, '[]') WITH &&,
        during WITH &&
    )
);
CREATE INDEX booking_tables_by_day ON booking_tables (restaurant_id, booking_date);

-- Every consumed change event, recorded in the transaction that applied it.
CREATE TABLE processed_events (
    event_id        text PRIMARY KEY,
    booking_id      text NOT NULL,
    processed_at    timestamptz NOT NULL DEFAULT now()
);

-- Same idempotency key + same restaurant = same submission.
CREATE TABLE submissions (
    restaurant_id   text NOT NULL,
    idempotency_key text NOT NULL,
    booking_id      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, idempotency_key)
);

-- Changes for a restaurant whose configuration has not arrived yet wait here, in order.
CREATE TABLE parked_changes (
    seq             bigserial PRIMARY KEY,
    restaurant_id   text NOT NULL,
    booking_id      text NOT NULL,
    event_id        text NOT NULL UNIQUE,
    payload         jsonb NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_changes_by_restaurant ON parked_changes (restaurant_id, seq);
CREATE INDEX parked_changes_by_booking ON parked_changes (booking_id);

-- The email outbox: one row per (booking, kind, pending_ref), whatever is redelivered.
CREATE TABLE notifications (
    notification_id text PRIMARY KEY,
    booking_id      text NOT NULL,
    restaurant_id   text NOT NULL,
    kind            text NOT NULL,
    pending_ref     text NOT NULL,
    recipient       text,
    status          text NOT NULL
                    CHECK (status IN ('held', 'due', 'sending', 'sent', 'suppressed',
                                      'skipped', 'cancelled', 'failed')),
    reason          text,
    due_at          timestamptz NOT NULL,
    lease_until     timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    context         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (booking_id, kind, pending_ref)
);
CREATE INDEX notifications_due ON notifications (due_at) WHERE status IN ('held', 'due', 'sending');

-- Facts to publish (status events, notification records, ops events, allocation requests),
-- written in the same transaction as the state change that caused them.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    topic           text NOT NULL,           -- logical name: booking-status, notifications, ...
    key             text,
    payload         bytea NOT NULL,          -- the JSON record, serialised once
    created_at      timestamptz NOT NULL DEFAULT now()
);
