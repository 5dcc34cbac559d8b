"""pointgroup_ros: PointGroup 3D instance segmentation as a ROS 2 perception package.

A ROS-free core (config, model, clustering, pipeline, data, training, evaluation) and a thin ROS layer (ros/).
"""
# In a colcon install the generated message module (pointgroup_ros.msg) sits in the installed copy of this
# package. Extending the path lets a source checkout that shadows the installed copy (pytest run from the
# repository in a sourced shell) still find it; without an install this changes nothing.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
