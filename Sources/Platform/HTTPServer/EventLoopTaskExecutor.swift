import NIOCore

/// A task executor that runs jobs on one NIO event loop.
///
/// A connection's task prefers the event loop of its channel: the request arrives, its handler runs and its response
/// is written on that one thread, and a handler's awaited call (the database writer thread finishing a commit) comes
/// back to it directly, instead of hopping through Swift's cooperative pool on the way in and out. Handlers must
/// therefore not block: they run where the connection's I/O does.
final class EventLoopTaskExecutor: TaskExecutor {
    /// The loop the jobs run on.
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
