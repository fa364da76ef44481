/// What AMQP 0-9-1 can carry, checked before anything goes on the wire.
///
/// rabbitmq-c sends `basic.publish` as a method frame, then a content header frame (the properties), then the body.
/// If the properties cannot be encoded (a short string over 255 bytes, a header table larger than the frame) it fails
/// only after the method frame is on the wire, and the broker closes the connection (`505 UNEXPECTED_FRAME`). So every
/// message is checked here first (``OutboundMessage/amqpProblem(frameMax:)``): one that does not fit fails its own
/// publish call with ``MessagingError/Code/unencodable`` and nothing is sent. ``MessageProperties/fittedToAMQP(frameMax:keeping:)``
/// drops what does not fit, for a move (dead-lettering) that must carry the body whatever its properties held.
public enum AMQPLimits {
    /// Longest short string (routing key, queue name, `message_id`, `type`, `app_id`, `content_type`, header key), in
    /// UTF-8 bytes.
    public static let shortStringBytes = 255
    /// The frame size this client asks for at login; the broker may agree to less (never below ``minimumFrameSize``).
    public static let frameMax = 131_072
    /// The smallest frame size AMQP allows a broker to negotiate.
    public static let minimumFrameSize = 4_096
    /// RabbitMQ's default `max_message_size` (128 MiB): a larger body is refused by the broker with a channel error.
    public static let bodyBytes = 134_217_728

    /// Frame header (type, channel, size) and end octet.
    static let frameOverhead = 8
    /// Content header payload before the properties: class id, weight, body size, property flags.
    static let contentHeaderFixed = 14

    /// The largest encoded properties that fit in a content header frame of `frameMax` bytes.
    static func propertiesBudget(frameMax: Int) -> Int {
        frameMax - frameOverhead - contentHeaderFixed
    }

    /// `text` cut to at most `maxBytes` UTF-8 bytes at a character boundary, with `…` appended when cut.
    public static func truncating(_ text: String, toBytes maxBytes: Int) -> String {
        guard text.utf8.count > maxBytes else { return text }
        let ellipsis = "…"
        let budget = max(0, maxBytes - ellipsis.utf8.count)
        var end = text.utf8.startIndex
        var used = 0
        for index in text.indices {
            let next = text.index(after: index)
            let size = text.utf8.distance(from: index, to: next)
            if used + size > budget { break }
            used += size
            end = next
        }
        return String(text[..<end]) + ellipsis
    }
}

extension MessageProperties {
    /// The size of these properties in a content header frame, in bytes (rabbitmq-c's encoding: header values as
    /// long strings).
    var encodedSize: Int {
        var size = 1  // delivery_mode is always sent
        for value in [contentType, messageID, type, appID] {
            if let value { size += 1 + value.utf8.count }
        }
        if timestamp != nil { size += 8 }
        if !headers.isEmpty { size += 4 + headers.reduce(0) { $0 + Self.entrySize(key: $1.key, value: $1.value) } }
        return size
    }

    /// One header table entry: short-string key, type octet, long-string value.
    static func entrySize(key: String, value: String) -> Int {
        1 + key.utf8.count + 1 + 4 + value.utf8.count
    }

    /// What of these properties AMQP cannot carry in a frame of `frameMax` bytes, in words; `nil` if all fits.
    func amqpProblem(frameMax: Int) -> String? {
        let limit = AMQPLimits.shortStringBytes
        let shortStrings = [("content_type", contentType), ("message_id", messageID), ("type", type), ("app_id", appID)]
        for case (let name, let value?) in shortStrings where value.utf8.count > limit {
            return "property \(name) is \(value.utf8.count) bytes (at most \(limit))"
        }
        if let key = headers.keys.first(where: { $0.utf8.count > limit }) {
            return "header key '\(AMQPLimits.truncating(key, toBytes: 40))' is \(key.utf8.count) bytes (at most \(limit))"
        }
        let budget = AMQPLimits.propertiesBudget(frameMax: frameMax)
        if encodedSize > budget {
            return "properties are \(encodedSize) bytes (at most \(budget) in a \(frameMax)-byte frame)"
        }
        return nil
    }

    /// These properties with what AMQP cannot carry in a frame of `frameMax` bytes dropped, and a description of each
    /// thing dropped (empty when everything fits). Short strings over 255 bytes and headers with such keys are
    /// dropped; then, while the whole is too large, the largest headers not named in `keeping`, then those too.
    public func fittedToAMQP(
        frameMax: Int = AMQPLimits.frameMax, keeping: Set<String> = []
    ) -> (properties: MessageProperties, dropped: [String]) {
        var fitted = self
        var dropped: [String] = []
        let limit = AMQPLimits.shortStringBytes
        func fit(_ name: String, _ value: inout String?) {
            guard let text = value, text.utf8.count > limit else { return }
            dropped.append("\(name) (\(text.utf8.count) bytes)")
            value = nil
        }
        fit("content_type", &fitted.contentType)
        fit("message_id", &fitted.messageID)
        fit("type", &fitted.type)
        fit("app_id", &fitted.appID)
        for key in fitted.headers.keys where key.utf8.count > limit {
            dropped.append("a header with a \(key.utf8.count)-byte key")
            fitted.headers[key] = nil
        }
        let budget = AMQPLimits.propertiesBudget(frameMax: frameMax)
        var size = fitted.encodedSize
        if size > budget {
            // Largest first, those to keep last: as few headers as possible are lost.
            let candidates = fitted.headers.sorted { left, right in
                let (leftKept, rightKept) = (keeping.contains(left.key), keeping.contains(right.key))
                if leftKept != rightKept { return !leftKept }
                return Self.entrySize(key: left.key, value: left.value) > Self.entrySize(key: right.key, value: right.value)
            }
            for (key, value) in candidates where size > budget {
                let entry = Self.entrySize(key: key, value: value)
                fitted.headers[key] = nil
                size -= entry
                if fitted.headers.isEmpty { size -= 4 }
                dropped.append("header '\(AMQPLimits.truncating(key, toBytes: 40))' (\(value.utf8.count) bytes)")
            }
        }
        return (fitted, dropped)
    }
}

extension OutboundMessage {
    /// What of this message AMQP cannot carry in a frame of `frameMax` bytes, in words; `nil` if it can be sent.
    /// A publish of such a message fails with ``MessagingError/Code/unencodable`` however often it is tried.
    public func amqpProblem(frameMax: Int) -> String? {
        if queue.utf8.count > AMQPLimits.shortStringBytes {
            return "routing key (queue name) is \(queue.utf8.count) bytes (at most \(AMQPLimits.shortStringBytes))"
        }
        if body.count > AMQPLimits.bodyBytes {
            return "body is \(body.count) bytes (at most \(AMQPLimits.bodyBytes))"
        }
        return properties.amqpProblem(frameMax: frameMax)
    }

    /// The error a publish of this message fails with when it cannot be carried, or `nil`.
    func unencodableError(frameMax: Int) -> MessagingError? {
        amqpProblem(frameMax: frameMax).map {
            MessagingError(.unencodable, "cannot publish to '\(AMQPLimits.truncating(queue, toBytes: 80))': \($0)")
        }
    }
}
