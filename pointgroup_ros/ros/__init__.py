"""The ROS 2 layer: PointCloud2 conversion (cloud), output messages (messages), message kits for rclpy and rosbags
(kit), rosbags typestores with vision_msgs and this package's messages (typestore), node parameters (params),
the per-frame processing shared by node and offline runner (processing), and the rclpy node (node).

Only node.py imports rclpy; everything else works without ROS 2 (rosbags stands in for the message classes).
"""
