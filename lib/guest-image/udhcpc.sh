#!/bin/sh
# udhcpc's event script: applies the lease and prints it on the console (one parseable line).
case "$1" in
  bound | renew)
    ip addr flush dev "$interface"
    # The network's MTU (option 26; 1450 for an overlay-sized network): frames the bridge would drop otherwise.
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    mac=$(cat "/sys/class/net/$interface/address")
    mtu_now=$(cat "/sys/class/net/$interface/mtu")
    echo "bootflow-guest: instance=$(cat /run/instance-id) mac=$mac ip=$ip/${mask:-24} mtu=$mtu_now ready" > /dev/console
    # Metadata is optional: fetched in the background, never waited for (busybox 1.35's wget -T crashes:
    # timeout bounds it instead).
    (timeout 10 wget -q -O /run/meta_data.json http://169.254.169.254/openstack/latest/meta_data.json \
      && echo "bootflow-guest: metadata fetched" > /dev/console) &
    ;;
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
esac
exit 0
