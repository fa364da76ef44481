/// The most UTF-8 bytes each field of an event may have: the user API's limits, applied again by every consumer so
/// that an event published straight to a queue cannot carry what the API would refuse. Together they bound one
/// user's JSON to about 1.3 kB, and so a page of the most users or snapshots a list returns (500) to under 700 kB.
public enum EventLimits {
    /// A user's name: room for 100 characters of any script.
    public static let nameBytes = 400
    /// An email address (RFC 5321's path limit).
    public static let emailBytes = 254
    /// A user id (the API makes 36-byte UUIDs).
    public static let userIDBytes = 64
    /// An event id (the API makes 36-byte UUIDs); a longer AMQP `message_id` is not used as one.
    public static let eventIDBytes = 64
    /// An event type (`event`), also the AMQP `type` of what the router forwards.
    public static let eventTypeBytes = 64
}
