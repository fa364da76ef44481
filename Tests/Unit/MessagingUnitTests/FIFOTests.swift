import Testing

@testable import Messaging

struct FIFOTests {
    @Test func popsInTheOrderAppended() {
        var queue = FIFO<Int>()
        #expect(queue.isEmpty)
        #expect(queue.popFirst() == nil)
        queue.append(1)
        queue.append(contentsOf: [2, 3])
        #expect(queue.count == 3)
        #expect(queue.popFirst() == 1)
        queue.append(4)
        #expect([queue.popFirst(), queue.popFirst(), queue.popFirst()] == [2, 3, 4])
        #expect(queue.isEmpty)
        #expect(queue.popFirst() == nil)
    }

    @Test func staysInOrderAcrossCompaction() {
        // Enough pops that the storage is compacted several times while elements keep arriving.
        var queue = FIFO<Int>()
        var expected = 0
        for value in 0..<1_000 {
            queue.append(value)
            if value % 3 != 0 {
                #expect(queue.popFirst() == expected)
                expected += 1
            }
        }
        #expect(queue.count == 1_000 - expected)
        while let value = queue.popFirst() {
            #expect(value == expected)
            expected += 1
        }
        #expect(expected == 1_000)
    }

    @Test func removeTakesTheFirstMatchAndKeepsTheRestInOrder() {
        var queue = FIFO([1, 2, 3, 2, 4])
        _ = queue.popFirst()
        #expect(queue.remove { $0 == 2 } == 2)
        #expect(queue.remove { $0 == 9 } == nil)
        #expect(queue.removeAll() == [3, 2, 4])
        #expect(queue.isEmpty)
    }

    @Test func removeAllWhereReturnsTheMatchesInOrder() {
        var queue = FIFO(0..<10)
        _ = queue.popFirst()
        #expect(queue.removeAll { $0.isMultiple(of: 3) } == [3, 6, 9])
        #expect(queue.removeAll { $0 > 100 } == [])
        #expect(queue.removeAll() == [1, 2, 4, 5, 7, 8])
    }
}
