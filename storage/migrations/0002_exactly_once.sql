-- Contract revision 2: versions on status events, fenced email leases, allocation attempts
-- with an identity, and a place for dead letters the topic cannot take.

-- The booking_version of the last status event decided for the booking.
ALTER TABLE bookings ADD COLUMN version integer NOT NULL DEFAULT 0;

-- Who holds a `sending` row: every write after the send is conditional on this token, so a
-- sender whose lease was taken over can never overwrite the new holder's outcome.
ALTER TABLE notifications ADD COLUMN lease_token text;

-- Allocation requests acted on, by request_id (booking, pending_ref, attempt; or the
-- transition that released capacity), written in the transaction that acts on them: a
-- redelivered, replayed or republished request finds its id and changes nothing.
CREATE TABLE allocation_requests_done (
    request_id      text PRIMARY KEY,
    restaurant_id   text NOT NULL,
    done_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX allocation_requests_done_by_age ON allocation_requests_done (done_at);

-- Dead letters the dead-letters topic refused for good (a key or headers larger than one
-- record may be, a broker-side limit): kept whole, retried by a relay, counted in /health
-- and /metrics, listed by `seatflow dlq tail`. One row per consumed message.
CREATE TABLE dead_letter_backlog (
    id                  bigserial PRIMARY KEY,
    original_topic      text NOT NULL,
    original_partition  integer NOT NULL,
    original_offset     bigint NOT NULL,
    original_key        bytea,
    original_value      bytea,
    header_names        text[] NOT NULL,      -- the dead letter's headers, in order
    header_values       bytea[] NOT NULL,
    stage               text NOT NULL,
    publish_error       text NOT NULL,        -- why the topic did not take it
    attempts            integer NOT NULL DEFAULT 1,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (original_topic, original_partition, original_offset)
);
