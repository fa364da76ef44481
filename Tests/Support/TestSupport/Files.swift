import Foundation

/// The repository's root directory, found from this file's path.
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { url.deleteLastPathComponent() }  // Files.swift, TestSupport, Support, Tests
    return url.path
}()

/// A fresh temporary directory whose name starts with `prefix`.
public func temporaryDirectory(_ prefix: String = "test") throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A directory `disk` in `directory` on a tmpfs of its own of `size` (such as `3m`), for a full-disk test (the suite
/// runs as root, as CI does). Unmount it with ``unmountSmallDisk(_:)``.
public func mountSmallDisk(in directory: String, size: String = "3m") async throws -> String {
    let disk = "\(directory)/disk"
    try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
    let mounted = try await runProcess(["/usr/bin/env", "mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", disk])
    guard mounted.status == 0 else { throw TestFailure("mounting a tmpfs for a full-disk test: \(mounted.errors)") }
    return disk
}

/// Fills a disk of ``mountSmallDisk(in:size:)`` with a file of zeros until a write fails for lack of space; returns
/// the file, whose removal makes room again.
public func fillDisk(_ disk: String) throws -> String {
    let filler = "\(disk)/filler"
    _ = FileManager.default.createFile(atPath: filler, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
    let chunk = Data(repeating: 0, count: 64 * 1024)
    while (try? handle.write(contentsOf: chunk)) != nil {}
    try? handle.close()
    return filler
}

/// Unmounts a disk of ``mountSmallDisk(in:size:)`` (lazily: a process may still hold a file there).
public func unmountSmallDisk(_ disk: String) {
    _ = try? runProcessBlocking(["/usr/bin/env", "umount", "-l", disk])
}
