#!/bin/busybox sh
# PID 1 of the bootflow guest (an initramfs, cirros-like): loads the virtio drivers, brings its NIC up
# with DHCP (and the MTU it offers), prints a line a test can parse on the serial console, answers ping,
# serves a tiny HTTP page and a CGI that pings another address (/cgi-bin/ping?<ip>),
# fetches its metadata if a metadata service answers, and powers off on an ACPI power button event.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run /tmp /var/log /var/www/cgi-bin
# virtio_ring before virtio_net: the order is the dependency order (there is no depmod in here).
for module in $(cat /etc/guest-modules); do
  insmod "/lib/modules/$module.ko" 2>/dev/null || echo "bootflow-guest: could not load $module"
done
# The instance id: from the kernel command line, else from SMBIOS (type 1 uuid), as Nova sets both.
uuid=$(sed -n 's/.* bootflow.uuid=\([0-9a-f-]*\).*/\1/p' /proc/cmdline)
[ -n "$uuid" ] || uuid=$(cat /sys/class/dmi/id/product_uuid 2>/dev/null)
echo "$uuid" > /run/instance-id
hostname "instance-$(echo "$uuid" | cut -c1-8)"
echo "bootflow-guest: booting instance=$uuid"
ip link set lo up
# acpid needs a writable log; the power button runs /etc/acpi/PWRF/00000080 (poweroff).
acpid -l /var/log/acpid.log -c /etc/acpi
cat > /var/www/index.html <<PAGE
bootflow guest $uuid
PAGE
httpd -p 80 -h /var/www
nic=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
if [ -z "$nic" ]; then
  echo "bootflow-guest: instance=$uuid no network interface"
else
  ip link set "$nic" up
  # -b: keep trying in the background until a DHCP server answers; the event script prints the lease.
  udhcpc -i "$nic" -s /etc/udhcpc.sh -t 60 -T 2 -A 3 -b -q -x "hostname:instance-$(echo "$uuid" | cut -c1-8)" \
    >/dev/null 2>&1
fi
while :; do sleep 3600; done
