-- Guests' personal data (docs/deployment.md "Personal data"): when a booking's name, email,
-- phone and notes were erased (on request, or past SEATFLOW_GUEST_DATA_RETENTION_DAYS).
-- Once set it stays: later changes of the booking store no personal data, and no email
-- about it is sent.
ALTER TABLE bookings ADD COLUMN erased_at timestamptz;

-- The retention pass finds bookings past their date that still hold personal data.
CREATE INDEX bookings_personal_data_by_date ON bookings (booking_date) WHERE erased_at IS NULL;
