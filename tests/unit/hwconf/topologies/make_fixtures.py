#!/usr/bin/env python3
"""Writes the machine fixtures of tests/unit/hwconf: for each machine, topology.xml (hwloc XML, the
CPU and NUMA structure from hwloc's synthetic generator, PCI devices and hugepage counts added
here) and root/ (the sysfs and procfs files the machine check reads besides hwloc).

Run from this folder with Debian's hwloc-nox installed (lstopo-no-graphics); the output is
committed, so the tests do not need hwloc's tools. README.md says what each machine is.
"""
import os
import re
import shutil
import subprocess

GIB = 1 << 30


def synthetic(description):
    xml = subprocess.run(['lstopo-no-graphics', '-i', description, '--of', 'xml', '-'],
                         check=True, capture_output=True, text=True).stdout
    # Drop what names the generating process: the fixtures must not change with who made them.
    return re.sub(r'\s*<info name="ProcessName" value="[^"]*"/>', '', xml)


def add_hugepages(xml, node, pages):
    """pages: [(size_bytes, count)] reserved on NUMA node `node` (hwloc's page_type lines)."""
    pattern = r'(<object type="NUMANode" os_index="%d"[^>]*>\n)(\s*)(<page_type size="4096"[^>]*/>\n)' % node
    lines = ''.join('%s<page_type size="%d" count="%d"/>\n' % ('{indent}', s, c) for s, c in pages)

    def repl(m):
        return m.group(1) + m.group(2) + m.group(3) + lines.replace('{indent}', m.group(2))
    out, n = re.subn(pattern, repl, xml)
    assert n == 1, node
    return out


def add_pci(xml, package, bus, devices):
    """devices: [(busid, class, vendor, name)] behind one host bridge of `package`."""
    objs = ''.join(
        '        <object type="PCIDev" pci_busid="%s" pci_type="%s 01" pci_link_speed="0.000000">\n'
        '          <info name="PCIVendor" value="%s"/>\n'
        '          <info name="PCIDevice" value="%s"/>\n'
        '        </object>\n' % d for d in devices)
    bridge = ('      <object type="Bridge" bridge_type="0-1" depth="0" bridge_pci="0000:[%s-%s]">\n'
              '%s      </object>\n' % (bus, bus, objs))
    # The bridge goes last in its package: hwloc attaches I/O objects to their closest CPU-side
    # ancestor, so the devices' locality is the package and its NUMA node.
    marker = '<object type="Package" os_index="%d"' % package
    start = xml.index(marker)
    depth, i = 0, start
    while True:
        o = xml.index('<object', i) if '<object' in xml[i:] else len(xml)
        c = xml.index('</object>', i)
        if o < c:
            self_closing = xml.index('>', o)
            if xml[self_closing - 1] != '/':
                depth += 1
            i = self_closing + 1
        else:
            depth -= 1
            if depth == 0:
                return xml[:c] + bridge + '    ' + xml[c:]
            i = c + 1


def write(root, path, text):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, 'w') as f:
        f.write(text)


def hugepage_files(root, node, size_kb, total, free):
    d = 'sys/devices/system/node/node%d/hugepages/hugepages-%dkB/' % (node, size_kb)
    write(root, d + 'nr_hugepages', '%d\n' % total)
    write(root, d + 'free_hugepages', '%d\n' % free)


def pci_files(root, address, node, driver, netdev=None, msi_irqs=()):
    d = 'sys/bus/pci/devices/%s/' % address
    write(root, d + 'numa_node', '%d\n' % node)
    os.symlink('../../../bus/pci/drivers/' + driver, os.path.join(root, d, 'driver'))
    if netdev:
        os.makedirs(os.path.join(root, d, 'net', netdev))
    for irq in msi_irqs:
        write(root, d + 'msi_irqs/%d' % irq, 'msix\n')


def irq_files(root, affinity):
    for irq, cpus in affinity.items():
        write(root, 'proc/irq/%d/smp_affinity_list' % irq, cpus + '\n')
        write(root, 'proc/irq/%d/effective_affinity_list' % irq, cpus + '\n')


def fresh(name):
    shutil.rmtree(name, ignore_errors=True)
    os.makedirs(os.path.join(name, 'root'))
    return os.path.join(name, 'root')


def server_2s():
    """Two sockets, 4 cores x 2 threads each, Intel numbering (siblings N and N+8): node 0 has
    CPUs 0-3,8-11, node 1 has 4-7,12-15. A two-port E810 on node 0 (bound to vfio-pci), a
    two-port ConnectX-6 on node 1 (mlx5 stays on its kernel driver; its IRQs are on CPUs 4 and
    12, the housekeeping core of node 1). Tuned: isolcpus/nohz_full on everything but core 0 and
    core 4, hugepages on both nodes, hugetlbfs mounted."""
    root = fresh('server-2s')
    xml = synthetic('pack:2 [numa(memory=%d)] core:4 pu:2(indexes=%s)' % (
        64 * GIB, ','.join('%d,%d' % (c, c + 8) for c in range(8))))
    xml = add_hugepages(xml, 0, [(2 << 20, 1024), (GIB, 8)])
    xml = add_hugepages(xml, 1, [(2 << 20, 0), (GIB, 4)])
    xml = add_pci(xml, 0, '3b', [('0000:3b:00.0', '0200 [8086:1592] [8086:0002]', 'Intel Corporation', 'Ethernet Controller E810-C for QSFP'),
                                 ('0000:3b:00.1', '0200 [8086:1592] [8086:0002]', 'Intel Corporation', 'Ethernet Controller E810-C for QSFP')])
    xml = add_pci(xml, 1, 'af', [('0000:af:00.0', '0200 [15b3:101d] [15b3:0083]', 'Mellanox Technologies', 'MT2892 Family [ConnectX-6 Dx]'),
                                 ('0000:af:00.1', '0200 [15b3:101d] [15b3:0083]', 'Mellanox Technologies', 'MT2892 Family [ConnectX-6 Dx]')])
    write('server-2s', 'topology.xml', xml)
    write(root, 'sys/devices/system/cpu/present', '0-15\n')
    write(root, 'sys/devices/system/cpu/online', '0-15\n')
    write(root, 'sys/devices/system/cpu/isolated', '1-3,5-7,9-11,13-15\n')
    write(root, 'sys/devices/system/cpu/nohz_full', '1-3,5-7,9-11,13-15\n')
    hugepage_files(root, 0, 2048, 1024, 1024)
    hugepage_files(root, 0, 1048576, 8, 8)
    hugepage_files(root, 1, 2048, 0, 0)
    hugepage_files(root, 1, 1048576, 4, 4)
    pci_files(root, '0000:3b:00.0', 0, 'vfio-pci')
    pci_files(root, '0000:3b:00.1', 0, 'vfio-pci')
    pci_files(root, '0000:af:00.0', 1, 'mlx5_core', 'ens6f0np0', range(120, 124))
    pci_files(root, '0000:af:00.1', 1, 'mlx5_core', 'ens6f1np1', range(124, 128))
    lines = ['            ' + ''.join('CPU%-8d' % c for c in range(16)).rstrip()]
    for irq in range(120, 128):
        port = 0 if irq < 124 else 1
        name = 'mlx5_comp%d@pci:0000:af:00.%d' % (irq % 4, port)
        lines.append('%4d: %s  PCI-MSIX-0000:af:00.%d %d-edge      %s' % (
            irq, ''.join('%10d ' % (1000 if c in (4, 12) else 0) for c in range(16)), port, irq % 4, name))
    lines.append(' 24: %s  IO-APIC   4-edge      ttyS0' % ''.join('%10d ' % 0 for _ in range(16)))
    write(root, 'proc/interrupts', '\n'.join(lines) + '\n')
    irq_files(root, {irq: '4' if irq % 2 == 0 else '12' for irq in range(120, 128)})
    write(root, 'proc/mounts', 'sysfs /sys sysfs rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n'
          'nodev /mnt/huge1g hugetlbfs rw,relatime,pagesize=1024M 0 0\n')


def laptop():
    """One socket, 4 cores x 2 threads (siblings N and N+4), one node. Nothing isolated, no
    hugepages reserved (systemd mounts hugetlbfs anyway). The onboard NIC is on the kernel
    driver with its IRQ on CPU 2."""
    root = fresh('laptop')
    xml = synthetic('pack:1 [numa(memory=%d)] core:4 pu:2(indexes=0,4,1,5,2,6,3,7)' % (16 * GIB))
    xml = add_hugepages(xml, 0, [(2 << 20, 0), (GIB, 0)])
    xml = add_pci(xml, 0, '00', [('0000:00:1f.6', '0200 [8086:15fa] [17aa:22c0]', 'Intel Corporation', 'Ethernet Connection (11) I219-LM'),
                                 ('0000:00:14.3', '0280 [8086:a0f0] [8086:0074]', 'Intel Corporation', 'Wi-Fi 6 AX201')])
    write('laptop', 'topology.xml', xml)
    write(root, 'sys/devices/system/cpu/present', '0-7\n')
    write(root, 'sys/devices/system/cpu/online', '0-7\n')
    write(root, 'sys/devices/system/cpu/isolated', '\n')
    hugepage_files(root, 0, 2048, 0, 0)
    hugepage_files(root, 0, 1048576, 0, 0)
    pci_files(root, '0000:00:1f.6', -1, 'e1000e', 'enp0s31f6', [130])
    pci_files(root, '0000:00:14.3', -1, 'iwlwifi', 'wlp0s20f3', [131])
    write(root, 'proc/interrupts',
          '            CPU0       CPU1       CPU2       CPU3       CPU4       CPU5       CPU6       CPU7\n'
          ' 130:          0          0      52113          0          0          0          0          0  IR-PCI-MSI-0000:00:1f.6    0-edge      enp0s31f6\n'
          ' 131:          0          0          0      90312          0          0          0          0  IR-PCI-MSIX-0000:00:14.3    0-edge      iwlwifi\n')
    irq_files(root, {130: '2', 131: '3'})
    write(root, 'proc/mounts', 'sysfs /sys sysfs rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n')


def vm_2core():
    """The CI machine: a 2-vCPU KVM guest, one node, no hyperthreads, no hugepages, no hugetlbfs
    mount, nothing isolated; a virtio NIC on the kernel driver (NUMA node -1)."""
    root = fresh('vm-2core')
    xml = synthetic('pack:1 [numa(memory=%d)] core:2 pu:1' % (11 * GIB))
    xml = add_hugepages(xml, 0, [(2 << 20, 0), (GIB, 0)])
    xml = add_pci(xml, 0, '00', [('0000:00:02.0', '0180 [1af4:1042] [1af4:1042]', 'Red Hat, Inc.', 'Virtio 1.0 block device'),
                                 ('0000:00:03.0', '0200 [1af4:1041] [1af4:1041]', 'Red Hat, Inc.', 'Virtio 1.0 network device')])
    write('vm-2core', 'topology.xml', xml)
    write(root, 'sys/devices/system/cpu/present', '0-1\n')
    write(root, 'sys/devices/system/cpu/online', '0-1\n')
    write(root, 'sys/devices/system/cpu/isolated', '\n')
    hugepage_files(root, 0, 2048, 0, 0)
    hugepage_files(root, 0, 1048576, 0, 0)
    pci_files(root, '0000:00:03.0', -1, 'virtio-pci', None, [37, 38, 39])
    write(root, 'proc/interrupts',
          '            CPU0       CPU1\n'
          '  37:          0          0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config\n'
          '  38:       4211          0 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n'
          '  39:          0       3980 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0\n')
    irq_files(root, {37: '0-1', 38: '0', 39: '1'})
    write(root, 'proc/mounts', 'sysfs /sys sysfs rw 0 0\nproc /proc proc rw 0 0\n')


if __name__ == '__main__':
    server_2s()
    laptop()
    vm_2core()
