import EventCodec
import Foundation

/// The users the API serves, and the events their changes produce. `SQLiteUserStore` is the backend on SQLite.
///
/// Every change writes the user and its event (into the backend's `Outbox`) in one transaction: a call that returns
/// has committed both durably, a call that throws has committed neither. Refusals are `UserStoreError`s.
protocol UserStore: Sendable {
    /// Creates a user (version 1) and its `user_created` event.
    ///
    /// With `idempotency`, a key seen before answers with the user it created then (`.replayed`) and writes nothing;
    /// the same key with another fingerprint is refused with `.idempotencyKeyReused`. Keys are kept
    /// `UserStoreRules.idempotencyKeyLifetime`.
    func create(name: String, email: String, traceparent: String, idempotency: IdempotencyKey?) async throws
        -> CreateOutcome

    /// Applies `patch` if the user's version meets `condition`: the next version and its `user_updated` event, or the
    /// user as it is, with no new version and no event, when the patch changes nothing.
    func update(id: String, patch: UserPatch, condition: VersionCondition, traceparent: String) async throws -> User

    /// Deletes the user if its version meets `condition`, with a `user_deleted` event carrying the next version.
    func delete(id: String, condition: VersionCondition, traceparent: String) async throws

    /// The user with this id, if there is one.
    func user(id: String) async throws -> User?

    /// Up to `limit` users in creation order, after the one at `position` (0: from the first), and the position to
    /// continue from when there may be more.
    func users(after position: Int64, limit: Int) async throws -> (users: [User], next: Int64?)
}

/// A user as the store keeps it and the API shows it.
struct User: Sendable, Equatable {
    var id: String
    var name: String
    var email: String
    /// 1 on create, +1 per change; the API's `ETag`.
    var version: Int64
    var createdAt: String
    var updatedAt: String
}

/// Why the store refused a call.
enum UserStoreError: Error, Equatable {
    /// Another user has this email (compared regardless of case).
    case emailTaken
    case notFound
    /// `If-Match` named another version; carries the current one.
    case versionMismatch(current: Int64)
    /// An `Idempotency-Key` reused with a different request.
    case idempotencyKeyReused
    /// The database failed the call (full disk, read-only file, ...); `reason` is the backend's error.
    case unavailable(reason: String)
}

/// A client's `Idempotency-Key` and what it was sent with: two requests are the same when their fingerprints are.
///
/// The fingerprint is built here only, and every backend stores it as it is: the name and the email as sent, joined
/// by U+001F (unit separator). Neither field can contain a control character (`UserValidation`; surrounding
/// whitespace, kept as sent, is never U+001F), so the join is unambiguous, and it holds no NUL, which PostgreSQL text
/// cannot store (SQLSTATE 22021).
struct IdempotencyKey: Sendable, Equatable {
    /// The header's value.
    let key: String
    /// What a backend stores and compares: see the type's description.
    let fingerprint: String

    /// The key sent with a create of `name` and `email`, both as the request carried them.
    init(key: String, name: String, email: String) {
        self.key = key
        fingerprint = "\(name)\u{1F}\(email)"
    }

    /// Whether a stored fingerprint is this request's. Also accepts the form SQLite stored before (joined by NUL,
    /// until keys written then expire), so a retry of such a request still replays.
    func matches(storedFingerprint stored: String) -> Bool {
        stored == fingerprint
            || stored.unicodeScalars.elementsEqual(fingerprint.unicodeScalars.map { $0 == "\u{1F}" ? "\u{0}" : $0 })
    }
}

/// The outcome of a create.
enum CreateOutcome: Sendable, Equatable {
    case created(User)
    /// A retry with a known `Idempotency-Key`: the user as that key first created it, even if it changed since.
    case replayed(User)
}

/// A requested change to a user; nil fields stay as they are.
struct UserPatch: Sendable {
    var name: String?
    var email: String?
}

/// What a version precondition (`If-Match`) accepts.
enum VersionCondition: Sendable, Equatable {
    case any
    case oneOf([Int64])

    func accepts(_ version: Int64) -> Bool {
        switch self {
        case .any: true
        case .oneOf(let versions): versions.contains(version)
        }
    }
}

/// The rules every `UserStore` backend follows, written once: ids, versions, the events of each change.
enum UserStoreRules {
    /// How long an `Idempotency-Key` is remembered.
    static let idempotencyKeyLifetime: TimeInterval = 24 * 60 * 60

    /// Emails are unique regardless of case: the key their uniqueness is checked on.
    static func emailKey(_ email: String) -> String {
        email.lowercased()
    }

    /// A new user (version 1, fresh id) and its `user_created` event.
    static func created(name: String, email: String, at now: Date) -> (user: User, event: UserEvent) {
        let timestamp = Timestamp.format(now)
        let user = User(
            id: newID(), name: name, email: email, version: 1, createdAt: timestamp, updatedAt: timestamp)
        let event = UserEvent(
            kind: .created, userID: user.id, name: name, email: email, eventID: newID(), version: 1, occurredAt: now)
        return (user, event)
    }

    /// `user` changed by `patch` (the next version) and its `user_updated` event with the full new state; nil when
    /// the patch changes nothing.
    static func updated(_ user: User, by patch: UserPatch, at now: Date) -> (user: User, event: UserEvent)? {
        let name = patch.name ?? user.name
        let email = patch.email ?? user.email
        guard name != user.name || email != user.email else { return nil }
        var changed = user
        changed.name = name
        changed.email = email
        changed.version += 1
        changed.updatedAt = Timestamp.format(now)
        let event = UserEvent(
            kind: .updated, userID: user.id, name: name, email: email, eventID: newID(), version: changed.version,
            occurredAt: now)
        return (changed, event)
    }

    /// The `user_deleted` event of `user`: it carries the version after the user's last one.
    static func deleted(_ user: User, at now: Date) -> UserEvent {
        UserEvent(kind: .deleted, userID: user.id, eventID: newID(), version: user.version + 1, occurredAt: now)
    }

    /// A random (version 4) UUID as lowercase text, drawn from the system's random source (`getrandom`): Foundation's
    /// `UUID()` opens and closes `/dev/urandom` for every id on Linux, two more system calls per id on the request path.
    static func newID() -> String {
        var random = SystemRandomNumberGenerator()
        var bytes = (random.next() as UInt64, random.next() as UInt64)
        return withUnsafeMutableBytes(of: &bytes) { raw in
            raw[6] = (raw[6] & 0x0F) | 0x40  // version 4
            raw[8] = (raw[8] & 0x3F) | 0x80  // RFC 4122 variant
            let b = Array(raw)
            return UUID(
                uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])
            ).uuidString.lowercased()
        }
    }
}
