import EventCodec
import Foundation

/// `user-events-bench --codec-loop MODE:N`: encodes or decodes one realistic event body N times in process, with no
/// broker, and prints the time per operation (best of five rounds of N; wall clock, so noisy on a shared machine).
///
/// For repeatable instruction counts, compile the same loop with `swiftc -O` together with the sources of
/// `Sources/Foundations/Common` (as `scripts/fuzz.sh` builds its harness) and run it under
/// `valgrind --tool=callgrind` at two counts, dividing the difference: valgrind 3.19 crashes on this async
/// executable itself.
enum CodecLoop {
    /// What one iteration does.
    enum Mode: String, CaseIterable {
        case encodeCreated = "encode-created"
        case encodeDeleted = "encode-deleted"
        case decodeCreated = "decode-created"
        /// The original system's shape: `event`, `user_id`, `name`, `email` only.
        case decodeOriginal = "decode-original"
        case decodeDeleted = "decode-deleted"
        /// What the router does per delivery: the type and the event from one scan.
        case envelopeCreated = "envelope-created"
    }

    /// Parses `MODE:N` and runs the loop.
    static func run(_ argument: String) throws {
        let parts = argument.split(separator: ":")
        guard parts.count == 2, let mode = Mode(rawValue: String(parts[0])), let count = Int(parts[1]), count >= 0
        else {
            let modes = Mode.allCases.map(\.rawValue).joined(separator: ", ")
            throw CodecLoopError(description: "--codec-loop: '\(argument)' is not MODE:N (modes: \(modes))")
        }
        run(mode, count: count)
    }

    static func run(_ mode: Mode, count: Int) {
        let when = Timestamp.parse("2026-11-24T10:00:00.123Z")
        let created = UserEvent(
            kind: .created, userID: "0b5c3f1e-7d2a-4c1b-9e8f-123456789abc", name: "Alice Liddell-Smythe",
            email: "alice.smythe@example.com", eventID: "5f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", version: 3,
            occurredAt: when)
        let deleted = UserEvent(
            kind: .deleted, userID: "0b5c3f1e-7d2a-4c1b-9e8f-123456789abc",
            eventID: "6a1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", version: 4, occurredAt: when)
        let createdBody = created.encodedBody()
        let deletedBody = deleted.encodedBody()
        let originalBody = Array(
            #"{"event": "user_created", "user_id": "42", "name": "Alice Liddell-Smythe", "email": "alice.smythe@example.com"}"#
                .utf8)
        var bytes = 0
        var best = Duration.seconds(1_000_000)
        let clock = ContinuousClock()
        for _ in 0..<5 {
            let start = clock.now
            for _ in 0..<count {
                switch mode {
                case .encodeCreated: bytes &+= created.encodedBody().count
                case .encodeDeleted: bytes &+= deleted.encodedBody().count
                case .decodeCreated: bytes &+= (try? UserEvent.decode(body: createdBody, messageID: "m-1"))?.userID.utf8.count ?? 0
                case .decodeOriginal: bytes &+= (try? UserEvent.decode(body: originalBody, messageID: "m-1"))?.userID.utf8.count ?? 0
                case .decodeDeleted: bytes &+= (try? UserEvent.decode(body: deletedBody, messageID: "m-1"))?.userID.utf8.count ?? 0
                case .envelopeCreated:
                    bytes &+= (try? UserEvent.envelope(of: createdBody, messageID: "m-1"))?.event?.userID.utf8.count ?? 0
                }
            }
            best = min(best, start.duration(to: clock.now))
        }
        let nanoseconds = Double(best.components.seconds) * 1e9 + Double(best.components.attoseconds) / 1e9
        // The byte count is printed so the work cannot be optimised away.
        print("\(mode.rawValue): \(count) iterations, best round \(best), \(Int(nanoseconds / Double(max(count, 1)))) ns per operation (\(bytes))")
    }
}

/// A `--codec-loop` argument that is not `MODE:N`.
struct CodecLoopError: Error, CustomStringConvertible {
    let description: String
}
