// libFuzzer harness for the event decoder (`make fuzz`): built with `swiftc -sanitize=fuzzer` together with the
// sources of EventCodec, so `UserEvent` is in this module. Any crash, sanitizer report or broken property below is a
// finding; libFuzzer saves the input under .build/fuzz/artifacts.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEventDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let body = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    // The AMQP message id that came with the body: none, empty, or one taken from the first byte.
    let messageID: String? = body.first.map { $0 % 3 == 0 ? nil : ($0 % 3 == 1 ? "" : "m-\($0)") } ?? nil
    let event: UserEvent
    do {
        event = try UserEvent.decode(body: body, messageID: messageID)
    } catch {
        precondition(!error.reason.isEmpty, "an error without a reason")
        if let typeError = Result(catching: { () throws(EventDecodingError) in try UserEvent.eventType(of: body) })
            .failure
        {
            precondition(typeError == error, "eventType(of:) and decode(body:) disagree on \(error)")
        }
        return 0
    }
    precondition((1...128).contains(event.userID.utf8.count), "user_id of \(event.userID.utf8.count) bytes")
    precondition(event.version >= 1, "version \(event.version)")
    precondition(!event.eventID.isEmpty, "empty event id")
    precondition((event.kind == .deleted) == (event.name == nil && event.email == nil), "fields do not match the kind")
    precondition((try? UserEvent.eventType(of: body)) == event.kind.rawValue, "eventType(of:) disagrees")

    // Re-encoding keeps the event (the time to the millisecond, the wire's precision).
    guard let once = try? UserEvent.decode(body: event.encodedBody()) else {
        preconditionFailure("a decoded event does not decode after re-encoding")
    }
    var expected = event
    expected.occurredAt = once.occurredAt
    precondition(once == expected, "re-encoding changed the event")
    if let before = event.occurredAt, let after = once.occurredAt {
        precondition(abs(before.timeIntervalSince(after)) < 0.001, "re-encoding moved the time")
    } else {
        precondition(event.occurredAt == nil && once.occurredAt == nil, "re-encoding lost or invented the time")
    }
    // A second hop changes nothing (where a Date can hold milliseconds: below about year 140,000).
    let twice = try? UserEvent.decode(body: once.encodedBody())
    let millisecondsFit = once.occurredAt.map { abs($0.timeIntervalSince1970) < 1e12 } ?? true
    precondition(twice == once || !millisecondsFit, "a second re-encoding changed the event")
    return 0
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
