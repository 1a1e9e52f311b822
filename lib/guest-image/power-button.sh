#!/bin/sh
# ACPI power button (QMP system_powerdown): a clean, immediate power-off.
echo "bootflow-guest: ACPI power button, powering off" > /dev/console
sync
poweroff -f
