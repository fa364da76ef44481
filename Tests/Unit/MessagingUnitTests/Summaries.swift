@testable import Messaging

// Short, comparable forms of the state machine's actions, so that a test reads as the sequence it expects:
// `#expect(machine.start().summary == ["connect(declare q, selectConfirms)"])`.

extension [ConnectionAction] {
    var summary: [String] { map(\.summary) }
}

extension ConnectionAction {
    var summary: String {
        switch self {
        // Node 0 goes unsaid, so that single-node tests read as before; another node is named 1-based, as
        // operators count them: `connect(node 2: declare q)`.
        case .connect(let steps, let node):
            "connect(\(node == 0 ? "" : "node \(node + 1): ")\(steps.map(\.summary).joined(separator: ", ")))"
        case .reportConnected(let generation, let isReconnect, let node):
            "reportConnected(\(generation)\(isReconnect ? ", reconnect" : "")\(node == 0 ? "" : ", node \(node + 1)"))"
        case .reportConnectFailed(let attempt, let node, let error):
            "reportConnectFailed(\(attempt)\(node == 0 ? "" : ", node \(node + 1)"), \(error.code))"
        case .stopWithError(let error): "stopWithError(\(error.code))"
        case .backOff(let delay): "backOff(\(delay))"
        case .abandonConnection(let error, let reconnecting):
            "abandonConnection(\(error.code)\(reconnecting ? ", reconnecting" : ""))"
        case .replyCloseOk(let isConnection): "replyCloseOk(\(isConnection ? "connection" : "channel"))"
        case .startDrainTimer(let timeout): "startDrainTimer(\(timeout))"
        case .closeConnection: "closeConnection"
        case .finish: "finish"
        case .log(let level, let message): "log(\(level), \(message))"
        case .reportBlocked(let reason): "reportBlocked(\(reason))"
        case .reportUnblocked(let cause): "reportUnblocked(\(cause))"
        case .countMessages(let requestID, let queue): "countMessages(\(requestID), \(queue))"
        case .declare(let requestID, let queues): "declare(\(requestID), \(queues.joined(separator: " ")))"
        case .completeDeclaration(let requestID): "completeDeclaration(\(requestID))"
        case .failDeclaration(let requestID, let error): "failDeclaration(\(requestID), \(error.code))"
        case .failCount(let requestID, let error): "failCount(\(requestID), \(error.code))"
        case .sendPublish(let message): "sendPublish(\(String(decoding: message.body, as: UTF8.self)))"
        case .completePublish(let requestID): "completePublish(\(requestID))"
        case .failPublish(let requestID, let error): "failPublish(\(requestID), \(error.code))"
        case .cancelPublish(let requestID): "cancelPublish(\(requestID))"
        case .ack(let tag, let multiple): "ack(\(tag)\(multiple ? ", multiple" : ""))"
        case .reject(let tag, let requeue): "reject(\(tag)\(requeue ? ", requeue" : ""))"
        case .cancelConsumer(let consumerTag): "cancelConsumer(\(consumerTag))"
        case .yieldDelivery(let delivery):
            "yieldDelivery(\(String(decoding: delivery.body, as: UTF8.self)), "
                + "tag \(delivery.deliveryTag) of \(delivery.generation))"
        case .finishDeliveries: "finishDeliveries"
        }
    }
}

extension SetupStep {
    var summary: String {
        switch self {
        case .declare(let queue): "declare \(queue)"
        case .selectConfirms: "selectConfirms"
        case .setPrefetch(let count): "setPrefetch \(count)"
        case .consume(let queue): "consume \(queue)"
        }
    }
}

extension [PublishOutcome] {
    /// `"1"` for a confirmed call, `"2: nacked"` for a failed one.
    var summary: [String] {
        map { outcome in outcome.failure.map { "\(outcome.requestID): \($0.code)" } ?? "\(outcome.requestID)" }
    }
}
